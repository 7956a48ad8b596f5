// Runs every `curl` example and the OpenAI Node SDK example of README.md
// against a real `nibble serve` on the demo model, so the README cannot drift
// from what the server does. Each ```sh block made only of curl commands runs
// in bash with the port rewritten; every request must succeed (HTTP 2xx),
// return no error object, and streams must end with [DONE]. The ```js block
// runs with node against the official `openai` package of tests/node.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { TestServer } from '../server/node/harness.mjs';

const readme = readFileSync(process.env.NIBBLE_README, 'utf8');
const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)]
  .map((m) => m[1])
  .filter((b) => b.trim().split('\n').every((line) => /^(curl |\s|$)/.test(line) || line.startsWith('  ')));

let server;
before(async () => {
  server = await TestServer.start({ servedModelName: 'demo-model' });
});
after(async () => {
  await server?.stop();
});

test('the README has curl examples', () => {
  assert.ok(blocks.length >= 4, `found ${blocks.length} curl blocks`);
});

// Each curl call prints its body, then a status line the test reads.
const prelude = `curl() { command curl -sS -w '\\n__HTTP__ %{http_code}\\n' "$@"; }\n`;

for (const [i, block] of blocks.entries()) {
  test(`README curl block ${i + 1}: ${block.split('\n')[0].slice(0, 70)}`, () => {
    const script = prelude + block.replaceAll('127.0.0.1:8000', `127.0.0.1:${server.port}`);
    const out = execFileSync('bash', ['-euo', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 60000 });
    const statuses = [...out.matchAll(/__HTTP__ (\d+)/g)].map((m) => Number(m[1]));
    const calls = (block.match(/^curl /gm) ?? []).length;
    assert.equal(statuses.length, calls, out);
    for (const s of statuses) assert.ok(s >= 200 && s < 300, `HTTP ${s}:\n${out}`);
    assert.doesNotMatch(out, /"error"\s*:\s*\{/, out);
    if (block.includes('"stream": true')) assert.match(out, /data: \[DONE\]/, out);
  });
}

const jsBlocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
const nodeDir = fileURLToPath(new URL('../node/', import.meta.url));

test('README OpenAI Node SDK example', { skip: !existsSync(`${nodeDir}node_modules/openai`) && 'no tests/node/node_modules' }, () => {
  assert.equal(jsBlocks.length, 1, 'one Node example');
  // Written beside tests/node/node_modules so `import OpenAI from 'openai'` resolves.
  const file = `${nodeDir}readme-example-${process.pid}.mjs`;
  writeFileSync(file, jsBlocks[0].replaceAll('127.0.0.1:8000', `127.0.0.1:${server.port}`));
  try {
    const out = execFileSync(process.execPath, [file], { encoding: 'utf8', timeout: 60000 });
    assert.ok(out.length > 0, 'the example printed the streamed text');
  } finally {
    rmSync(file, { force: true });
  }
});
