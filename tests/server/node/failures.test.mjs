// Failure paths that need the fake engine's hooks: an engine error in the
// middle of a stream and a chat template that raises.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { TestServer, kind } from './harness.mjs';

describe('failures (fake engine)', { skip: kind !== 'fake' && 'needs the fake engine' }, () => {
  let server;
  before(async () => { server = await TestServer.start(); });
  after(async () => { await server.stop(); });

  test('an engine failure mid-stream sends an error event and ends the stream', async () => {
    const r = await server.stream('/v1/completions', { prompt: 'please FAIL now', max_tokens: 20, ignore_eos: true });
    assert.equal(r.status, 200);
    const last = r.events.at(-1);
    assert.notEqual(last, '[DONE]');
    assert.equal(typeof last.error.message, 'string');
    assert.match(last.error.message, /simulated engine failure/);
    assert.ok(r.events.length >= 2, 'tokens before the failure were streamed');
  });

  test('an engine failure without streaming is a 500 error object', async () => {
    const r = await server.post('/v1/chat/completions', { messages: [{ role: 'user', content: 'FAIL' }], max_tokens: 20 });
    assert.equal(r.status, 500);
    assert.match(r.json.error.message, /simulated engine failure/);
    const ok = await server.post('/v1/completions', { prompt: 'fine', max_tokens: 2 });
    assert.equal(ok.status, 200);
  });

  test('a chat template that raises is a 400 naming messages', async () => {
    const r = await server.post('/v1/chat/completions', { messages: [{ role: 'user', content: 'raise' }] });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.param, 'messages');
    assert.match(r.json.error.message, /template/);
  });
});
