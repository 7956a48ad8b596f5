// Starts a real server process on 127.0.0.1 (a free port) for one test file
// and stops it at the end. NIBBLE_SERVER_KIND picks what runs:
//   fake: NIBBLE_FAKE_SERVER (the HTTP server over a fake engine, no model)
//   real: NIBBLE_BINARY serve --model NIBBLE_DEMO_MODEL --device cpu
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const kind = process.env.NIBBLE_SERVER_KIND ?? 'fake';
// max_tokens for a request that must still be running a moment later: the
// fake engine (with slow: true) makes 40 steps/s, the tiny demo model on a
// CPU makes ~1000 tokens/s.
export const longTokens = kind === 'fake' ? 400 : 2000;

export function loadOpenAI() {
  try {
    const require = createRequire(new URL('../../node/package.json', import.meta.url));
    return require('openai');
  } catch {
    return null;  // tests/node has no node_modules: `cd tests/node && npm ci`
  }
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Generic options -> command line of the chosen kind.
function commandFor(port, opts) {
  const common = ['--host', '127.0.0.1', '--port', String(port), '--log-level', opts.logLevel ?? 'warn'];
  if (opts.apiKey) common.push('--api-key', opts.apiKey);
  if (opts.allowedOrigins) common.push('--allowed-origins', opts.allowedOrigins);
  if (opts.maxBodySize) common.push('--max-body-size', String(opts.maxBodySize));
  if (opts.maxWaiting) common.push('--max-waiting', String(opts.maxWaiting));
  if (opts.maxNumSeqs) common.push('--max-num-seqs', String(opts.maxNumSeqs));
  if (opts.servedModelName) common.push('--served-model-name', opts.servedModelName);
  if (kind === 'fake') {
    const args = [...common];
    if (opts.slow) args.push('--step-ms', '25');
    if (opts.loadDelayMs) args.push('--load-delay-ms', String(opts.loadDelayMs));
    if (opts.drainTimeoutS !== undefined) args.push('--drain-timeout-ms', String(opts.drainTimeoutS * 1000));
    return [process.env.NIBBLE_FAKE_SERVER, args];
  }
  const args = ['serve', '--model', process.env.NIBBLE_DEMO_MODEL, '--device', 'cpu', ...common];
  if (opts.drainTimeoutS !== undefined) args.push('--drain-timeout', String(opts.drainTimeoutS));
  return [process.env.NIBBLE_BINARY, args];
}

export class TestServer {
  static async start(opts = {}) {
    const port = await freePort();
    const [bin, args] = commandFor(port, opts);
    if (!bin) throw new Error(`no server binary for kind ${kind}`);
    const env = { ...process.env, ...(opts.env ?? {}) };
    const proc = spawn(bin, [...args, ...(opts.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const server = new TestServer(proc, port);
    server.apiKey = opts.apiKey ?? opts.clientApiKey;  // clientApiKey: the key reaches the server another way
    if (opts.waitReady !== false) await server.waitReady();
    return server;
  }

  constructor(proc, port) {
    this.proc = proc;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.output = '';
    proc.stdout.on('data', (d) => { this.output += d; });
    proc.stderr.on('data', (d) => { this.output += d; });
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  }

  async waitReady(timeoutMs = 60000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const r = await fetch(`${this.base}/health`);
        if (r.status === 200) {
          const headers = this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
          this.modelName = (await (await fetch(`${this.base}/v1/models`, { headers })).json()).data[0].id;
          return;
        }
      } catch { /* not listening yet */ }
      if (this.proc.exitCode !== null) throw new Error(`server exited early:\n${this.output}`);
      await sleep(50);
    }
    throw new Error(`server not ready after ${timeoutMs} ms:\n${this.output}`);
  }

  async stop() {
    if (this.proc.exitCode === null) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }

  url(path) { return `${this.base}${path}`; }

  async post(path, body, headers = {}) {
    const r = await fetch(this.url(path), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, headers: r.headers, text, json };
  }

  async get(path, headers = {}) {
    const r = await fetch(this.url(path), { headers });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, headers: r.headers, text, json };
  }

  // POSTs a streaming request and returns every `data:` payload (parsed JSON,
  // or the string "[DONE]") plus the raw text.
  async stream(path, body, headers = {}) {
    const r = await fetch(this.url(path), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ ...body, stream: true }),
    });
    const text = await r.text();
    const events = [];
    for (const block of text.split('\n\n')) {
      const line = block.split('\n').find((l) => l.startsWith('data: '));
      if (!line) continue;
      const data = line.slice(6);
      events.push(data === '[DONE]' ? '[DONE]' : JSON.parse(data));
    }
    return { status: r.status, headers: r.headers, text, events };
  }

  async metric(name) {
    const { text } = await this.get('/metrics');
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  }

  // Polls until the metric equals value (or the timeout passes); returns the last value.
  async waitMetric(name, value, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    let v;
    while (Date.now() < deadline) {
      v = await this.metric(name);
      if (v === value) return v;
      await sleep(50);
    }
    return v;
  }

}

export function chatBody(extra = {}) {
  return { messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 12, ...extra };
}
