// Serving behaviour: concurrency, client disconnects, graceful shutdown, loading.
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { TestServer, kind, longTokens } from './harness.mjs';

function streamedText(events) {
  return events.filter((e) => e !== '[DONE]' && e.choices?.length)
    .map((e) => e.choices[0].delta?.content ?? e.choices[0].text ?? '').join('');
}

describe('serving', () => {
  test('64 concurrent streaming clients all complete, equal to the same seeded requests one at a time', async () => {
    const server = await TestServer.start();
    try {
      const body = (i) => ({
        messages: [{ role: 'user', content: `Client ${i} says hello.` }],
        max_tokens: 16, temperature: 0.8, seed: 1000 + i, ignore_eos: i % 2 === 0,
      });
      const concurrent = await Promise.all(
        Array.from({ length: 64 }, (_, i) => server.stream('/v1/chat/completions', body(i))));
      for (const r of concurrent) {
        assert.equal(r.status, 200);
        assert.equal(r.events.at(-1), '[DONE]');
      }
      for (let i = 0; i < 64; i++) {
        const single = await server.stream('/v1/chat/completions', body(i));
        assert.equal(streamedText(concurrent[i].events), streamedText(single.events), `client ${i}`);
      }
      assert.equal(await server.waitMetric('nibble_kv_cache_blocks_used', 0), 0);
    } finally {
      await server.stop();
    }
  });

  test('a client that disconnects mid-stream frees its KV blocks', async () => {
    const server = await TestServer.start({ slow: true });
    try {
      const generatedBefore = await server.metric('nibble_generation_tokens_total');
      await new Promise((resolve, reject) => {
        const req = http.request(server.url('/v1/completions'), {
          method: 'POST', headers: { 'content-type': 'application/json' },
        }, (res) => {
          let chunks = 0;
          res.on('data', () => {
            chunks++;
            if (chunks === 3) {
              req.destroy();  // hang up mid-stream
              resolve();
            }
          });
          res.on('error', () => {});
        });
        req.on('error', () => {});
        req.end(JSON.stringify({ prompt: 'long story', max_tokens: longTokens, ignore_eos: true, stream: true }));
        setTimeout(() => reject(new Error('no chunks arrived')), 10000);
      });
      assert.ok((await server.metric('nibble_kv_cache_blocks_used')) >= 0);
      assert.equal(await server.waitMetric('nibble_kv_cache_blocks_used', 0, 8000), 0);
      assert.equal(await server.waitMetric('nibble_num_requests_running', 0, 2000), 0);
      // Cancelled, not run to completion.
      const generated = (await server.metric('nibble_generation_tokens_total')) - generatedBefore;
      assert.ok(generated < longTokens, `${generated} tokens generated`);
      const after = await server.post('/v1/completions', { prompt: 'next', max_tokens: 2 });
      assert.equal(after.status, 200);
    } finally {
      await server.stop();
    }
  });

  test('SIGTERM during active streams: they finish, /health turns 503, exit code 0', async () => {
    const server = await TestServer.start({ slow: true, drainTimeoutS: 30 });
    const streams = Array.from({ length: 4 }, (_, i) => server.stream('/v1/completions',
      { prompt: `drain ${i}`, max_tokens: kind === 'fake' ? 20 : 300, ignore_eos: true }));
    assert.equal(await server.waitMetric('nibble_num_requests_running', 4, 5000), 4);
    server.proc.kill('SIGTERM');
    await sleep(100);
    const health = await server.get('/health').catch(() => ({ status: 'closed' }));
    assert.ok(health.status === 503 || health.status === 'closed', String(health.status));
    const results = await Promise.all(streams);
    for (const r of results) {
      assert.equal(r.events.at(-1), '[DONE]');
      const last = r.events.at(-2);
      assert.equal(last.choices[0].finish_reason, 'length');
    }
    const { code } = await server.exited;
    assert.equal(code, 0, server.output);
  });

  test('SIGTERM with streams longer than --drain-timeout: they end cleanly, exit code 0', async () => {
    const server = await TestServer.start({ slow: true, drainTimeoutS: 0.2 });
    const stream = server.stream('/v1/completions', { prompt: 'endless', max_tokens: longTokens, ignore_eos: true });
    await server.waitMetric('nibble_num_requests_running', 1, 5000);
    server.proc.kill('SIGTERM');
    const r = await stream;
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1), '[DONE]');
    assert.equal(r.events.at(-2).choices[0].finish_reason, 'abort');
    const { code } = await server.exited;
    assert.equal(code, 0, server.output);
  });

  test('/health is 503 while the model loads, then 200', { skip: kind !== 'fake' && 'needs a slow load' }, async () => {
    const server = await TestServer.start({ loadDelayMs: 1500, waitReady: false });
    try {
      let status;
      for (let i = 0; i < 100; i++) {
        try {
          const r = await server.get('/health');
          status = r.status;
          break;
        } catch { await sleep(20); }
      }
      assert.equal(status, 503);
      const gen = await server.post('/v1/completions', { prompt: 'x', max_tokens: 1 });
      assert.equal(gen.status, 503);
      await server.waitReady();
      assert.equal((await server.get('/health')).status, 200);
    } finally {
      await server.stop();
    }
  });

  test('options from a TOML --config file and NIBBLE_* environment variables', { skip: kind !== 'real' && 'serve command only' }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nibble-config-'));
    const file = path.join(dir, 'serve.toml');
    fs.writeFileSync(file, 'served-model-name = "from-toml"\nmax_num_seqs = 3\napi-key = "toml-key"\n');
    // The environment beats the file; the command line beats both.
    const server = await TestServer.start({ args: ['--config', file], env: { NIBBLE_API_KEY: 'env-key' }, clientApiKey: 'env-key' });
    try {
      assert.equal(server.modelName, 'from-toml');
      assert.equal((await server.get('/v1/models', { authorization: 'Bearer toml-key' })).status, 401);
      assert.equal((await server.get('/v1/models', { authorization: 'Bearer env-key' })).status, 200);
    } finally {
      await server.stop();
      fs.rmSync(dir, { recursive: true });
    }
  });
});
