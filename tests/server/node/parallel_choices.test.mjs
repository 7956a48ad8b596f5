// n > 1: the choices of a prompt are one engine request whose samples share
// the prompt's prefill. A stop string ends only its own choice; the others run
// on. Checked on both endpoints, streaming and not, through usage, /metrics
// counters and seeded reproducibility.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { TestServer, kind, longTokens } from './harness.mjs';

let server;
before(async () => { server = await TestServer.start({ maxNumSeqs: 8 }); });
after(async () => { await server.stop(); });

const N = 3;
const MAX_TOKENS = 24;

const endpoints = {
  chat: {
    path: '/v1/chat/completions',
    body: (extra) => ({ messages: [{ role: 'user', content: 'Three different answers, please.' }], ...extra }),
    text: (choice) => choice.message.content,
    delta: (choice) => choice.delta?.content ?? '',
  },
  completions: {
    path: '/v1/completions',
    body: (extra) => ({ prompt: 'Once upon a time, in three different ways', ...extra }),
    text: (choice) => choice.text,
    delta: (choice) => choice.text ?? '',
  },
};

function sampledBody(ep, extra = {}) {
  return ep.body({ n: N, max_tokens: MAX_TOKENS, temperature: 1.0, seed: 4321, ignore_eos: true, ...extra });
}

// A stop string found early in exactly one choice's text and nowhere in the
// others: { choice, stop, expected } or null.
function pickStop(texts) {
  const clean = (s) => !/[\uD800-\uDFFF\uFFFD]/.test(s);
  let best = null;
  texts.forEach((text, k) => {
    const others = texts.filter((_, j) => j !== k);
    for (let len = 2; len <= 8; len++) {
      for (let p = 3; p < Math.ceil(text.length / 2) && p + len <= text.length; p++) {
        const stop = text.slice(p, p + len);
        if (!clean(stop) || stop.trim() === '' || text.indexOf(stop) !== p) continue;
        if (others.some((o) => o.includes(stop))) continue;
        if (!best || p < best.position) best = { choice: k, stop, position: p, expected: text.slice(0, p) };
        break;
      }
    }
  });
  return best;
}

async function counters() {
  return {
    prompt: await server.metric('nibble_prompt_tokens_total'),
    queries: await server.metric('nibble_prefix_cache_queries_total'),
  };
}

// The prompt was admitted (prefilled) once, not once per choice.
async function assertPrefilledOnce(before, promptTokens) {
  assert.equal(await server.waitMetric('nibble_prompt_tokens_total', before.prompt + promptTokens), before.prompt + promptTokens,
    'nibble_prompt_tokens_total grew by more than one prompt');
  if (kind === 'real') {
    assert.equal(await server.metric('nibble_prefix_cache_queries_total'), before.queries + promptTokens);
  }
}

// Each choice's text and finish_reason from a stream, plus its usage chunk.
function collectStream(ep, events) {
  assert.equal(events.at(-1), '[DONE]');
  const texts = Array(N).fill('');
  const finishes = Array(N).fill(null);
  let usage = null;
  for (const e of events.slice(0, -1)) {
    if (e.usage) usage = e.usage;
    for (const c of e.choices) {
      assert.equal(finishes[c.index], null, `chunk for choice ${c.index} after its finish`);
      texts[c.index] += ep.delta(c);
      if (c.finish_reason) finishes[c.index] = c.finish_reason;
    }
  }
  return { texts, finishes, usage };
}

for (const [name, ep] of Object.entries(endpoints)) {
  describe(`n = ${N} on ${name}`, () => {
    let base;  // the choices without a stop string

    before(async () => {
      const start = await counters();
      const r = await server.post(ep.path, sampledBody(ep));
      assert.equal(r.status, 200, r.text);
      base = r.json;
      await assertPrefilledOnce(start, base.usage.prompt_tokens);
    });

    test('choices are distinct, indexed, and each runs to max_tokens', () => {
      assert.deepEqual(base.choices.map((c) => c.index), [0, 1, 2]);
      for (const c of base.choices) assert.equal(c.finish_reason, 'length');
      assert.equal(base.usage.completion_tokens, N * MAX_TOKENS);
      const texts = base.choices.map(ep.text);
      assert.equal(new Set(texts).size, N, JSON.stringify(texts));
    });

    test('choice i of a seeded request equals n = 1 with seed + i', async () => {
      const single = await server.post(ep.path, sampledBody(ep, { n: 1, seed: 4321 + 2 }));
      assert.equal(single.status, 200, single.text);
      assert.equal(ep.text(single.json.choices[0]), ep.text(base.choices[2]));
    });

    for (const stream of [false, true]) {
      test(`a stop string ends one choice early, the others run on (${stream ? 'streaming' : 'non-streaming'})`, async () => {
        const texts = base.choices.map(ep.text);
        const pick = pickStop(texts);
        assert.ok(pick, `no stop string unique to one choice in ${JSON.stringify(texts)}`);
        const start = await counters();
        const body = sampledBody(ep, { stop: [pick.stop] });
        let got;
        if (stream) {
          const r = await server.stream(ep.path, { ...body, stream_options: { include_usage: true } });
          assert.equal(r.status, 200, r.text);
          got = collectStream(ep, r.events);
        } else {
          const r = await server.post(ep.path, body);
          assert.equal(r.status, 200, r.text);
          assert.deepEqual(r.json.choices.map((c) => c.index), [0, 1, 2]);
          got = { texts: r.json.choices.map(ep.text), finishes: r.json.choices.map((c) => c.finish_reason), usage: r.json.usage };
        }
        for (let i = 0; i < N; i++) {
          if (i === pick.choice) {
            assert.equal(got.texts[i], pick.expected, `stopped choice ${i} (stop ${JSON.stringify(pick.stop)})`);
            assert.equal(got.finishes[i], 'stop');
          } else {
            assert.equal(got.texts[i], texts[i], `choice ${i} must be unaffected by choice ${pick.choice}'s stop`);
            assert.equal(got.finishes[i], 'length');
          }
        }
        assert.ok(got.usage, 'usage present');
        assert.equal(got.usage.prompt_tokens, base.usage.prompt_tokens);
        assert.ok(got.usage.completion_tokens < N * MAX_TOKENS, `completion_tokens ${got.usage.completion_tokens}`);
        assert.ok(got.usage.completion_tokens >= (N - 1) * MAX_TOKENS);
        assert.equal(got.usage.total_tokens, got.usage.prompt_tokens + got.usage.completion_tokens);
        await assertPrefilledOnce(start, got.usage.prompt_tokens);
        assert.equal(await server.waitMetric('nibble_kv_cache_blocks_used', 0), 0);
      });
    }
  });
}

describe('n > 1 lifecycle', () => {
  test('every choice hitting a stop string frees everything', async () => {
    const r = await server.post('/v1/completions',
      { prompt: 'Stop everywhere', n: N, max_tokens: 40, temperature: 0, ignore_eos: true, stop: [' ', 'e', 'a', 'o'] });
    assert.equal(r.status, 200, r.text);
    for (const c of r.json.choices) assert.ok(['stop', 'length'].includes(c.finish_reason));
    assert.equal(await server.waitMetric('nibble_kv_cache_blocks_used', 0), 0);
    assert.equal(await server.waitMetric('nibble_num_requests_running', 0), 0);
  });

  test('a client that disconnects cancels every choice', async () => {
    const slow = await TestServer.start({ slow: true });
    try {
      const generatedBefore = await slow.metric('nibble_generation_tokens_total');
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no chunks arrived')), 10000);
        const req = http.request(slow.url('/v1/completions'), {
          method: 'POST', headers: { 'content-type': 'application/json' },
        }, (res) => {
          let chunks = 0;
          res.on('data', () => {
            if (++chunks === 6) {
              clearTimeout(timer);
              req.destroy();
              resolve();
            }
          });
          res.on('error', () => {});
        });
        req.on('error', () => {});
        req.end(JSON.stringify({ prompt: 'long stories', n: N, max_tokens: longTokens, ignore_eos: true, stream: true }));
      });
      assert.equal(await slow.waitMetric('nibble_kv_cache_blocks_used', 0, 8000), 0);
      assert.equal(await slow.waitMetric('nibble_num_requests_running', 0, 2000), 0);
      const generated = (await slow.metric('nibble_generation_tokens_total')) - generatedBefore;
      assert.ok(generated < N * longTokens, `${generated} tokens generated`);
    } finally {
      await slow.stop();
    }
  });

  test('several prompts with n = 2: choices numbered prompt by prompt, each prompt prefilled once', async () => {
    const prompts = ['First prompt of two', 'Second prompt of two'];
    const before = await server.metric('nibble_prompt_tokens_total');
    const r = await server.post('/v1/completions',
      { prompt: prompts, n: 2, max_tokens: 5, temperature: 1.0, seed: 9, ignore_eos: true });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.choices.map((c) => c.index), [0, 1, 2, 3]);
    assert.equal(await server.waitMetric('nibble_prompt_tokens_total', before + r.json.usage.prompt_tokens),
      before + r.json.usage.prompt_tokens);
    const single = await server.post('/v1/completions',
      { prompt: prompts[1], n: 1, max_tokens: 5, temperature: 1.0, seed: 10, ignore_eos: true });
    assert.equal(single.json.choices[0].text, r.json.choices[3].text);
  });

  test('n above --max-num-seqs is split over several engine requests with the same seeds', async () => {
    const r = await server.post('/v1/completions',
      { prompt: 'Many choices', n: 10, max_tokens: 6, temperature: 1.0, seed: 77, ignore_eos: true });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.choices.map((c) => c.index), [...Array(10).keys()]);
    const single = await server.post('/v1/completions',
      { prompt: 'Many choices', n: 1, max_tokens: 6, temperature: 1.0, seed: 77 + 9, ignore_eos: true });
    assert.equal(single.json.choices[0].text, r.json.choices[9].text);
    assert.equal(r.json.usage.completion_tokens, 60);
  });
});
