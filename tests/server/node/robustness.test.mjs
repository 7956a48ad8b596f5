// Bad input: each a clean 4xx with an OpenAI error body, and the server keeps serving.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { TestServer, chatBody } from './harness.mjs';

let server;
before(async () => { server = await TestServer.start({ maxBodySize: 64 * 1024 }); });
after(async () => { await server.stop(); });

function assertErrorShape(r, status) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error, r.text);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.json.error.code === null || typeof r.json.error.code === 'string');
}

async function assertStillServing() {
  const r = await server.post('/v1/completions', { prompt: 'still alive', max_tokens: 2 });
  assert.equal(r.status, 200);
}

// A raw HTTP/1.1 request with an arbitrary (possibly invalid UTF-8) body.
function rawPost(path, bodyBytes) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(server.port, '127.0.0.1', () => {
      sock.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${bodyBytes.length}\r\nConnection: close\r\n\r\n`);
      sock.write(bodyBytes);
    });
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => {
      const status = Number(data.split(' ')[1]);
      const body = data.slice(data.indexOf('\r\n\r\n') + 4);
      let json = null;
      try { json = JSON.parse(body); } catch { /* ignore */ }
      resolve({ status, text: body, json });
    });
    sock.on('error', reject);
  });
}

describe('bad requests', () => {
  test('malformed JSON', async () => {
    for (const body of ['{', '{"messages": [}', 'not json', '', '[1,2']) {
      assertErrorShape(await server.post('/v1/chat/completions', body), 400);
      assertErrorShape(await server.post('/v1/completions', body), 400);
    }
    await assertStillServing();
  });

  test('wrong types', async () => {
    const cases = [
      { messages: 'hello' }, { messages: [{ role: 'user', content: 42 }] }, { messages: [{ content: 'x' }] },
      chatBody({ temperature: 'warm' }), chatBody({ max_tokens: '10' }), chatBody({ n: 'two' }),
      chatBody({ stop: 5 }), chatBody({ stream: 'yes' }), chatBody({ logit_bias: [1, 2] }), chatBody({ seed: 'x' }),
      chatBody({ logprobs: 3 }), chatBody({ stream_options: { include_usage: true } }),
    ];
    for (const body of cases) assertErrorShape(await server.post('/v1/chat/completions', body), 400);
    for (const body of [{ prompt: 42 }, { prompt: [true] }, { prompt: 'x', echo: 'yes' }, { prompt: [[1], 'a'] }]) {
      assertErrorShape(await server.post('/v1/completions', body), 400);
    }
    assertErrorShape(await server.post('/v1/chat/completions', [1, 2, 3]), 400);
    await assertStillServing();
  });

  test('out-of-range values', async () => {
    const cases = [
      chatBody({ temperature: -1 }), chatBody({ temperature: 3 }), chatBody({ top_p: 1.5 }), chatBody({ top_p: 0 }),
      chatBody({ n: 0 }), chatBody({ n: 1000 }), chatBody({ max_tokens: 0 }), chatBody({ max_tokens: -5 }),
      chatBody({ presence_penalty: 9 }), chatBody({ frequency_penalty: -9 }), chatBody({ top_logprobs: 50, logprobs: true }),
      chatBody({ logit_bias: { 999999999: 1 } }), chatBody({ logit_bias: { 1: 500 } }), chatBody({ min_p: 2 }),
      chatBody({ stop_token_ids: [-4] }), chatBody({ top_k: -2 }),
    ];
    for (const body of cases) {
      const r = await server.post('/v1/chat/completions', body);
      assertErrorShape(r, 400);
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.equal(typeof r.json.error.param, 'string', r.text);
    }
    assertErrorShape(await server.post('/v1/completions', { prompt: [999999999] }), 400);
    await assertStillServing();
  });

  test('huge max_tokens is 400 context_length_exceeded', async () => {
    for (const max_tokens of [1e6, 2 ** 31, 1e15]) {
      const r = await server.post('/v1/chat/completions', chatBody({ max_tokens }));
      assertErrorShape(r, 400);
      assert.equal(r.json.error.code, 'context_length_exceeded');
    }
    const longPrompt = 'word '.repeat(20000);
    const r = await server.post('/v1/completions', { prompt: longPrompt.slice(0, 60000), max_tokens: 1 });
    assertErrorShape(r, 400);
    assert.equal(r.json.error.code, 'context_length_exceeded');
    await assertStillServing();
  });

  test('oversized bodies are 413', async () => {
    const r = await server.post('/v1/completions', { prompt: 'x'.repeat(200 * 1024), max_tokens: 1 });
    assertErrorShape(r, 413);
    await assertStillServing();
  });

  test('invalid UTF-8 and lone surrogates in strings', async () => {
    const prefix = Buffer.from('{"messages":[{"role":"user","content":"');
    const suffix = Buffer.from('"}]}');
    for (const bad of [Buffer.from([0xff, 0xfe]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80])]) {
      const r = await rawPost('/v1/chat/completions', Buffer.concat([prefix, bad, suffix]));
      assertErrorShape(r, 400);
    }
    assertErrorShape(await server.post('/v1/chat/completions', '{"messages":[{"role":"user","content":"\\ud800"}]}'), 400);
    await assertStillServing();
  });

  test('missing messages or prompt', async () => {
    const a = await server.post('/v1/chat/completions', { model: server.modelName });
    assertErrorShape(a, 400);
    assert.equal(a.json.error.param, 'messages');
    const b = await server.post('/v1/completions', { model: server.modelName });
    assertErrorShape(b, 400);
    assert.equal(b.json.error.param, 'prompt');
    assertErrorShape(await server.post('/v1/chat/completions', { messages: [] }), 400);
    await assertStillServing();
  });

  test('unsupported features get a clear 400', async () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: {} } }];
    for (const body of [chatBody({ tools }), chatBody({ tool_choice: 'required' }),
      chatBody({ response_format: { type: 'json_object' } }),
      chatBody({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })]) {
      const r = await server.post('/v1/chat/completions', body);
      assertErrorShape(r, 400);
      assert.match(r.json.error.message, /not supported/);
    }
    const ok = await server.post('/v1/chat/completions', chatBody({ tools, tool_choice: 'none', max_tokens: 2 }));
    assert.equal(ok.status, 200);
    await assertStillServing();
  });

  test('content-part arrays and unknown fields are accepted', async () => {
    const r = await server.post('/v1/chat/completions', {
      messages: [{ role: 'system', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'hello' }, { type: 'text', text: 'there' }] }],
      max_tokens: 2, some_future_field: { x: 1 }, user: 'u-1',
    });
    assert.equal(r.status, 200, r.text);
  });
});
