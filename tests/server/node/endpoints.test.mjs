// Every endpoint, streaming and not, checked field by field with plain fetch.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { TestServer, chatBody, kind } from './harness.mjs';

let server;
before(async () => { server = await TestServer.start({ allowedOrigins: 'https://ui.example' }); });
after(async () => { await server.stop(); });

function assertUsage(usage) {
  assert.equal(typeof usage.prompt_tokens, 'number');
  assert.ok(usage.prompt_tokens > 0);
  assert.equal(typeof usage.completion_tokens, 'number');
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  assert.equal(typeof usage.prompt_tokens_details.cached_tokens, 'number');
}

describe('info endpoints', () => {
  test('GET /health is 200 when ready', async () => {
    const r = await server.get('/health');
    assert.equal(r.status, 200);
  });

  test('GET /v1/models lists the served model', async () => {
    const r = await server.get('/v1/models');
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'list');
    assert.equal(r.json.data.length, 1);
    const m = r.json.data[0];
    assert.equal(m.object, 'model');
    assert.equal(typeof m.id, 'string');
    assert.equal(m.owned_by, 'nibble');
    assert.equal(typeof m.created, 'number');
    assert.ok(m.max_model_len > 0);
  });

  test('GET /v1/models/{id}: the served id, else 404 model_not_found', async () => {
    const ok = await server.get(`/v1/models/${encodeURIComponent(server.modelName)}`);
    assert.equal(ok.status, 200);
    assert.equal(ok.json.id, server.modelName);
    const missing = await server.get('/v1/models/no-such-model');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.code, 'model_not_found');
  });

  test('GET /metrics is Prometheus text with the engine and latency metrics', async () => {
    await server.post('/v1/completions', { prompt: 'metrics', max_tokens: 3, ignore_eos: true });
    const r = await server.get('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/plain/);
    for (const name of ['nibble_num_requests_running', 'nibble_num_requests_waiting', 'nibble_kv_cache_usage_perc',
      'nibble_prompt_tokens_total', 'nibble_generation_tokens_total', 'nibble_prefix_cache_hit_rate',
      'nibble_time_to_first_token_seconds_bucket', 'nibble_inter_token_latency_seconds_bucket',
      'nibble_e2e_request_latency_seconds_bucket']) {
      assert.match(r.text, new RegExp(`^${name}`, 'm'), name);
    }
    assert.match(r.text, /^# TYPE nibble_prompt_tokens_total counter$/m);
    assert.ok((await server.metric('nibble_generation_tokens_total')) >= 3);
  });

  test('a repeated prompt is served from the prefix cache: cached_tokens and hit rate', { skip: kind !== 'real' && 'the fake engine has no prefix cache' }, async () => {
    const prompt = 'The quick brown fox jumps over the lazy dog and keeps running through the forest until night falls.';
    const first = await server.post('/v1/completions', { prompt, max_tokens: 2 });
    const second = await server.post('/v1/completions', { prompt, max_tokens: 2 });
    assert.equal(first.status, 200);
    assert.ok(second.json.usage.prompt_tokens_details.cached_tokens > 0, JSON.stringify(second.json.usage));
    assert.ok(second.json.usage.prompt_tokens_details.cached_tokens < second.json.usage.prompt_tokens);
    assert.ok((await server.metric('nibble_prefix_cache_hit_rate')) > 0);
    assert.ok((await server.metric('nibble_prefix_cache_hits_total')) > 0);
  });

  test('POST /tokenize and /detokenize round-trip (vLLM shapes)', async () => {
    const t = await server.post('/tokenize', { prompt: 'Hello world', add_special_tokens: false, return_token_strs: true });
    assert.equal(t.status, 200);
    assert.ok(Array.isArray(t.json.tokens));
    assert.equal(t.json.count, t.json.tokens.length);
    assert.ok(t.json.max_model_len > 0);
    assert.equal(t.json.token_strs.length, t.json.count);
    const d = await server.post('/detokenize', { tokens: t.json.tokens });
    assert.equal(d.status, 200);
    assert.equal(d.json.prompt, 'Hello world');
    const chat = await server.post('/tokenize', { messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(chat.status, 200);
    assert.ok(chat.json.count > 1);
    const bad = await server.post('/detokenize', { tokens: [-1] });
    assert.equal(bad.status, 400);
  });
});

describe('chat completions', () => {
  test('non-streaming: chat.completion field by field', async () => {
    const r = await server.post('/v1/chat/completions', chatBody({ model: server.modelName, max_tokens: 8 }));
    assert.equal(r.status, 200, r.text);
    const j = r.json;
    assert.match(j.id, /^chatcmpl-/);
    assert.equal(j.object, 'chat.completion');
    assert.equal(typeof j.created, 'number');
    assert.equal(j.model, server.modelName);
    assert.equal(typeof j.system_fingerprint, 'string');
    assert.equal(j.choices.length, 1);
    const c = j.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.equal(c.logprobs, null);
    assert.ok(['stop', 'length'].includes(c.finish_reason));
    assertUsage(j.usage);
    assert.ok(j.usage.completion_tokens <= 8);
    if (c.finish_reason === 'length') assert.equal(j.usage.completion_tokens, 8);
  });

  test('streaming: role first, same id/created, finish_reason last, usage chunk, [DONE]', async () => {
    const r = await server.stream('/v1/chat/completions',
      chatBody({ max_tokens: 6, stream_options: { include_usage: true } }));
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/event-stream/);
    const { events } = r;
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1);
    const usageChunk = chunks.at(-1);
    assert.deepEqual(usageChunk.choices, []);
    assertUsage(usageChunk.usage);
    const contentChunks = chunks.slice(0, -1);
    assert.equal(contentChunks[0].choices[0].delta.role, 'assistant');
    for (const ch of chunks) {
      assert.equal(ch.object, 'chat.completion.chunk');
      assert.equal(ch.id, chunks[0].id);
      assert.equal(ch.created, chunks[0].created);
      assert.equal(ch.model, server.modelName);
    }
    for (const ch of contentChunks) assert.equal(ch.usage, null);
    const finishes = contentChunks.map((c) => c.choices[0].finish_reason);
    assert.ok(finishes.slice(0, -1).every((f) => f === null));
    assert.ok(['stop', 'length'].includes(finishes.at(-1)));
    const text = contentChunks.map((c) => c.choices[0].delta.content ?? '').join('');
    assert.equal(usageChunk.usage.completion_tokens > 0, true);
    const nonStream = await server.post('/v1/chat/completions', chatBody({ max_tokens: 6, temperature: 0 }));
    const streamed = await server.stream('/v1/chat/completions', chatBody({ max_tokens: 6, temperature: 0 }));
    const streamedText = streamed.events.slice(0, -1).map((c) => c.choices[0].delta.content ?? '').join('');
    assert.equal(streamedText, nonStream.json.choices[0].message.content);
    assert.equal(typeof text, 'string');
  });

  test('streaming without include_usage has no usage key', async () => {
    const r = await server.stream('/v1/chat/completions', chatBody({ max_tokens: 3 }));
    for (const ch of r.events.slice(0, -1)) assert.equal('usage' in ch, false);
  });

  test('n > 1 gives indexed choices', async () => {
    const r = await server.post('/v1/chat/completions', chatBody({ n: 3, max_tokens: 4, seed: 7 }));
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.choices.map((c) => c.index), [0, 1, 2]);
    const s = await server.stream('/v1/chat/completions', chatBody({ n: 2, max_tokens: 4 }));
    const indexes = new Set(s.events.slice(0, -1).map((c) => c.choices[0].index));
    assert.deepEqual([...indexes].sort(), [0, 1]);
    for (const i of [0, 1]) {
      const own = s.events.slice(0, -1).filter((c) => c.choices[0].index === i);
      assert.equal(own[0].choices[0].delta.role, 'assistant');
      assert.notEqual(own.at(-1).choices[0].finish_reason, null);
    }
  });

  test('logprobs in the chat shape', async () => {
    const r = await server.post('/v1/chat/completions', chatBody({ max_tokens: 4, logprobs: true, top_logprobs: 2 }));
    assert.equal(r.status, 200, r.text);
    const content = r.json.choices[0].logprobs.content;
    assert.equal(content.length, r.json.usage.completion_tokens);
    for (const e of content) {
      assert.equal(typeof e.token, 'string');
      assert.ok(e.logprob <= 0);
      assert.ok(Array.isArray(e.bytes));
      assert.equal(e.top_logprobs.length, 2);
      for (const t of e.top_logprobs) {
        assert.equal(typeof t.token, 'string');
        assert.ok(Array.isArray(t.bytes));
      }
    }
    const s = await server.stream('/v1/chat/completions', chatBody({ max_tokens: 3, logprobs: true, top_logprobs: 1 }));
    const entries = s.events.slice(0, -1).flatMap((c) => c.choices[0].logprobs?.content ?? []);
    assert.ok(entries.length >= 1);
  });

  test('stop string: output ends before it, finish_reason stop', async () => {
    const base = await server.post('/v1/chat/completions', chatBody({ max_tokens: 24, temperature: 0, ignore_eos: true }));
    const text = base.json.choices[0].message.content;
    assert.ok(text.length >= 6, text);
    const stop = text.slice(3, 5);
    const expected = text.slice(0, text.indexOf(stop));
    const r = await server.post('/v1/chat/completions',
      chatBody({ max_tokens: 24, temperature: 0, ignore_eos: true, stop: [stop] }));
    assert.equal(r.json.choices[0].message.content, expected);
    assert.equal(r.json.choices[0].finish_reason, 'stop');
    const s = await server.stream('/v1/chat/completions',
      chatBody({ max_tokens: 24, temperature: 0, ignore_eos: true, stop }));
    const streamed = s.events.slice(0, -1).map((c) => c.choices[0].delta.content ?? '').join('');
    assert.equal(streamed, expected);
    assert.equal(s.events.at(-2).choices[0].finish_reason, 'stop');
    const incl = await server.post('/v1/chat/completions',
      chatBody({ max_tokens: 24, temperature: 0, ignore_eos: true, stop, include_stop_str_in_output: true }));
    assert.equal(incl.json.choices[0].message.content, expected + stop);
  });
});

describe('completions', () => {
  test('non-streaming: text_completion field by field', async () => {
    const r = await server.post('/v1/completions', { model: server.modelName, prompt: 'Once upon a time', max_tokens: 5 });
    assert.equal(r.status, 200, r.text);
    const j = r.json;
    assert.match(j.id, /^cmpl-/);
    assert.equal(j.object, 'text_completion');
    assert.equal(typeof j.created, 'number');
    assert.equal(j.model, server.modelName);
    assert.equal(typeof j.system_fingerprint, 'string');
    assert.equal(j.choices[0].index, 0);
    assert.equal(typeof j.choices[0].text, 'string');
    assert.equal(j.choices[0].logprobs, null);
    assert.ok(['stop', 'length'].includes(j.choices[0].finish_reason));
    assertUsage(j.usage);
  });

  test('every prompt form: string, strings, token ids, token-id lists', async () => {
    const ids = (await server.post('/tokenize', { prompt: 'abc' })).json.tokens;
    const forms = [['x', 1], [['x', 'y'], 2], [ids, 1], [[ids, ids], 2]];
    for (const [prompt, choices] of forms) {
      const r = await server.post('/v1/completions', { prompt, max_tokens: 2 });
      assert.equal(r.status, 200, JSON.stringify(prompt) + r.text);
      assert.equal(r.json.choices.length, choices);
    }
    const tokenPrompt = await server.post('/v1/completions', { prompt: ids, max_tokens: 2 });
    assert.equal(tokenPrompt.json.usage.prompt_tokens, ids.length);
  });

  test('echo and logprobs in the completions shape', async () => {
    const r = await server.post('/v1/completions', { prompt: 'Echo me', max_tokens: 3, echo: true, logprobs: 2 });
    assert.equal(r.status, 200, r.text);
    const c = r.json.choices[0];
    assert.ok(c.text.startsWith('Echo me'));
    const lp = c.logprobs;
    assert.equal(lp.tokens.length, lp.token_logprobs.length);
    assert.equal(lp.tokens.length, lp.top_logprobs.length);
    assert.equal(lp.tokens.length, lp.text_offset.length);
    const generated = lp.token_logprobs.filter((v) => v !== null);
    assert.equal(generated.length, r.json.usage.completion_tokens);
    const last = lp.top_logprobs.at(-1);
    assert.equal(Object.keys(last).length <= 2, true);
    for (let i = 1; i < lp.text_offset.length; i++) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  });

  test('streaming: text_completion chunks, include_usage, [DONE]', async () => {
    const r = await server.stream('/v1/completions', { prompt: 'Stream', max_tokens: 4, stream_options: { include_usage: true } });
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1), '[DONE]');
    const chunks = r.events.slice(0, -1);
    for (const ch of chunks) {
      assert.equal(ch.object, 'text_completion');
      assert.equal(ch.id, chunks[0].id);
      assert.equal(ch.created, chunks[0].created);
    }
    assert.deepEqual(chunks.at(-1).choices, []);
    assertUsage(chunks.at(-1).usage);
    assert.notEqual(chunks.at(-2).choices[0].finish_reason, null);
    for (const ch of chunks.slice(0, -1)) assert.equal(ch.usage, null);
  });
});

describe('HTTP behaviour', () => {
  test('X-Request-Id is echoed, or generated', async () => {
    const echoed = await server.get('/health', { 'x-request-id': 'my-id-123' });
    assert.equal(echoed.headers.get('x-request-id'), 'my-id-123');
    const generated = await server.get('/health');
    assert.ok(generated.headers.get('x-request-id').length > 8);
  });

  test('CORS: preflight and allowed origin headers', async () => {
    const pre = await fetch(server.url('/v1/chat/completions'), {
      method: 'OPTIONS',
      headers: { origin: 'https://ui.example', 'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://ui.example');
    assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
    assert.match(pre.headers.get('access-control-allow-headers'), /authorization/);
    const other = await fetch(server.url('/health'), { headers: { origin: 'https://evil.example' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  test('unknown routes are 404 and wrong methods 405, as JSON errors', async () => {
    const r = await server.get('/v1/nothing');
    assert.equal(r.status, 404);
    assert.equal(typeof r.json.error.message, 'string');
    const m = await server.get('/v1/chat/completions');
    assert.equal(m.status, 405);
    assert.equal(m.headers.get('allow'), 'POST');
    assert.equal(m.json.error.type, 'invalid_request_error');
  });

  test('a request naming another model is 404 model_not_found', async () => {
    const r = await server.post('/v1/chat/completions', chatBody({ model: 'gpt-4o' }));
    assert.equal(r.status, 404);
    assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(r.json.error.code, 'model_not_found');
  });
});

describe('authentication', () => {
  let secured;
  before(async () => { secured = await TestServer.start({ apiKey: 'sk-test' }); });
  after(async () => { await secured.stop(); });

  test('401 invalid_api_key without the key; Bearer and x-api-key accepted', async () => {
    const none = await secured.post('/v1/completions', { prompt: 'a', max_tokens: 1 });
    assert.equal(none.status, 401);
    assert.equal(none.json.error.code, 'invalid_api_key');
    const wrong = await secured.post('/v1/completions', { prompt: 'a', max_tokens: 1 }, { authorization: 'Bearer nope' });
    assert.equal(wrong.status, 401);
    const bearer = await secured.post('/v1/completions', { prompt: 'a', max_tokens: 1 }, { authorization: 'Bearer sk-test' });
    assert.equal(bearer.status, 200);
    const xkey = await secured.post('/v1/completions', { prompt: 'a', max_tokens: 1 }, { 'x-api-key': 'sk-test' });
    assert.equal(xkey.status, 200);
    assert.equal((await secured.get('/health')).status, 200);  // health stays open for probes
  });
});
