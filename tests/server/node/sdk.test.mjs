// The official OpenAI Node SDK driving the server: streaming with usage,
// n > 1, stop, seed reproducibility, logprobs and error mapping.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { TestServer, loadOpenAI, longTokens } from './harness.mjs';

const sdk = loadOpenAI();
const skip = sdk ? false : 'tests/node has no node_modules (cd tests/node && npm ci)';

describe('OpenAI Node SDK', { skip }, () => {
  let server;
  let client;
  const messages = [{ role: 'user', content: 'Tell me a story.' }];

  before(async () => {
    server = await TestServer.start({ apiKey: 'sk-sdk' });
    client = new sdk.OpenAI({ baseURL: server.url('/v1'), apiKey: 'sk-sdk', maxRetries: 0 });
  });
  after(async () => { await server.stop(); });

  test('models.list and models.retrieve', async () => {
    const page = await client.models.list();
    assert.equal(page.data[0].id, server.modelName);
    const model = await client.models.retrieve(server.modelName);
    assert.equal(model.id, server.modelName);
  });

  test('chat.completions.create, non-streaming', async () => {
    const r = await client.chat.completions.create({ model: server.modelName, messages, max_tokens: 8 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  test('streaming with include_usage', async () => {
    const stream = await client.chat.completions.create({
      model: server.modelName, messages, max_tokens: 8, stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    let finish = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        text += choice.delta.content ?? '';
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    assert.ok(chunks >= 2);
    assert.ok(['stop', 'length'].includes(finish));
    assert.ok(usage);
    assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 8);
    assert.equal(typeof text, 'string');
  });

  test('n > 1', async () => {
    const r = await client.chat.completions.create({ model: server.modelName, messages, max_tokens: 4, n: 3 });
    assert.equal(r.choices.length, 3);
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  });

  test('stop strings', async () => {
    const base = await client.chat.completions.create({
      model: server.modelName, messages, max_tokens: 20, temperature: 0, ignore_eos: true,
    });
    const text = base.choices[0].message.content;
    const stop = text.slice(2, 4);
    const r = await client.chat.completions.create({
      model: server.modelName, messages, max_tokens: 20, temperature: 0, ignore_eos: true, stop: [stop],
    });
    assert.equal(r.choices[0].message.content, text.slice(0, text.indexOf(stop)));
    assert.equal(r.choices[0].finish_reason, 'stop');
  });

  test('seed reproducibility', async () => {
    const ask = () => client.chat.completions.create({
      model: server.modelName, messages, max_tokens: 12, temperature: 1.0, seed: 1234, ignore_eos: true,
    });
    const [a, b] = [await ask(), await ask()];
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    const completion = () => client.completions.create({
      model: server.modelName, prompt: 'Seeded', max_tokens: 10, temperature: 0.9, seed: 99,
    });
    assert.equal((await completion()).choices[0].text, (await completion()).choices[0].text);
  });

  test('logprobs (chat and completions)', async () => {
    const r = await client.chat.completions.create({
      model: server.modelName, messages, max_tokens: 4, logprobs: true, top_logprobs: 3,
    });
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, r.usage.completion_tokens);
    assert.equal(content[0].top_logprobs.length, 3);
    const c = await client.completions.create({ model: server.modelName, prompt: 'Hi', max_tokens: 3, logprobs: 2 });
    assert.equal(c.choices[0].logprobs.tokens.length, c.usage.completion_tokens);
  });

  test('completions, streaming', async () => {
    const stream = await client.completions.create({ model: server.modelName, prompt: 'Count:', max_tokens: 6, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    assert.equal(typeof text, 'string');
  });

  test('400 -> BadRequestError', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: server.modelName, messages, temperature: 7 }),
      (e) => e instanceof sdk.BadRequestError && e.status === 400 && e.param === 'temperature');
    await assert.rejects(
      client.chat.completions.create({ model: server.modelName, messages, max_tokens: 10_000_000 }),
      (e) => e instanceof sdk.BadRequestError && e.code === 'context_length_exceeded');
  });

  test('401 -> AuthenticationError', async () => {
    const bad = new sdk.OpenAI({ baseURL: server.url('/v1'), apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.chat.completions.create({ model: server.modelName, messages }),
      (e) => e instanceof sdk.AuthenticationError && e.code === 'invalid_api_key');
  });

  test('404 -> NotFoundError', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'not-this-one', messages }),
      (e) => e instanceof sdk.NotFoundError && e.code === 'model_not_found');
  });
});

describe('OpenAI Node SDK: 429', { skip }, () => {
  let server;
  before(async () => { server = await TestServer.start({ maxNumSeqs: 1, maxWaiting: 1, slow: true }); });
  after(async () => { await server.stop(); });

  test('429 -> RateLimitError with Retry-After when the waiting queue is full', async () => {
    const client = new sdk.OpenAI({ baseURL: server.url('/v1'), apiKey: 'none', maxRetries: 0 });
    const long = { model: server.modelName, prompt: 'busy', max_tokens: longTokens, ignore_eos: true };
    const running = client.completions.create(long);
    await server.waitMetric('nibble_num_requests_running', 1);
    const waiting = client.completions.create(long);
    await server.waitMetric('nibble_num_requests_waiting', 1);
    const raw = await server.post('/v1/completions', long);
    assert.equal(raw.status, 429);
    assert.equal(raw.headers.get('retry-after'), '1');
    assert.equal(raw.json.error.type, 'rate_limit_exceeded');
    await assert.rejects(client.completions.create(long), (e) => e instanceof sdk.RateLimitError && e.status === 429);
    // The two long requests end when the server is stopped.
    running.catch(() => {});
    waiting.catch(() => {});
  });
});
