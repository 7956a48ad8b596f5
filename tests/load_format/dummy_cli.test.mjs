// `--load-format dummy` end to end: `nibble serve` and `nibble generate` on a
// small config.json written here (no weights, no tokenizer files), on the CPU.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { TestServer } from '../server/node/harness.mjs';

const binary = process.env.NIBBLE_BINARY;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nibble-dummy-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// Llama-shaped and small; a vocabulary past the demo tokenizer's 2048 ids, so
// random tokens exercise the placeholder decoding.
function writeConfig(file, overrides = {}) {
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama',
    hidden_size: 128, intermediate_size: 256, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 4096,
    max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 10000.0,
    tie_word_embeddings: false, torch_dtype: 'float16', bos_token_id: 2000, eos_token_id: 4095,
    ...overrides,
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

const folder = path.join(tmp, 'tiny-dummy');
writeConfig(path.join(folder, 'config.json'));

function run(args, env = {}) {
  const r = spawnSync(binary, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

async function withServer(model, opts, fn) {
  process.env.NIBBLE_DEMO_MODEL = model;  // the harness passes it as --model
  const server = await TestServer.start({ logLevel: 'info', ...opts });
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

describe('nibble serve --load-format dummy', () => {
  test('answers completions and streamed chat completions; usage, logprobs and stop strings work', async () => {
    await withServer(folder, { args: ['--load-format', 'dummy', '--threads', '2'] }, async (server) => {
      assert.match(server.output, /dummy weights \(random, shapes of .*tiny-dummy\)/);
      assert.match(server.output, /chat template: built-in Llama 3 style/);
      assert.equal(server.modelName, 'tiny-dummy');

      const done = await server.post('/v1/completions', {
        prompt: 'Benchmark me', max_tokens: 12, temperature: 0, ignore_eos: true, logprobs: 2,
      });
      assert.equal(done.status, 200, done.text);
      const choice = done.json.choices[0];
      assert.equal(done.json.usage.completion_tokens, 12);
      assert.ok(done.json.usage.prompt_tokens > 1);
      assert.equal(choice.finish_reason, 'length');
      assert.equal(choice.logprobs.tokens.length, 12);
      // Logprob tokens show special tokens too, which the text skips.
      const special = /^<\|[a-z_0-9]+\|>$/;
      assert.equal(choice.logprobs.tokens.filter((t) => !special.test(t)).join(''), choice.text);
      for (const lp of choice.logprobs.token_logprobs) assert.ok(Number.isFinite(lp) && lp <= 0);
      assert.ok(choice.text.length > 0);
      assert.match(choice.text, /<id_\d+>/);  // ids past the demo tokenizer's show as placeholders

      // Greedy is deterministic: stopping at a piece of that text ends right before it.
      const stopAt = choice.logprobs.tokens.slice(4).find((t) => t.startsWith('<id_'));
      assert.ok(stopAt, 'no placeholder past the fourth token');
      {
        const stopped = await server.post('/v1/completions', {
          prompt: 'Benchmark me', max_tokens: 12, temperature: 0, ignore_eos: true, stop: [stopAt],
        });
        assert.equal(stopped.status, 200, stopped.text);
        assert.equal(stopped.json.choices[0].finish_reason, 'stop');
        assert.equal(stopped.json.choices[0].text, choice.text.slice(0, choice.text.indexOf(stopAt)));
      }

      const streamed = await server.stream('/v1/chat/completions', {
        messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 10, ignore_eos: true,
        temperature: 0.8, seed: 3, stream_options: { include_usage: true },
      });
      assert.equal(streamed.status, 200, streamed.text);
      assert.equal(streamed.events.at(-1), '[DONE]');
      const chunks = streamed.events.filter((e) => e !== '[DONE]');
      const text = chunks.filter((e) => e.choices?.length).map((e) => e.choices[0].delta?.content ?? '').join('');
      assert.ok(text.length > 0);
      const usage = chunks.at(-1).usage;
      assert.equal(usage.completion_tokens, 10);
      assert.equal(await server.waitMetric('nibble_kv_cache_blocks_used', 0), 0);
    });
  });

  test('takes a config file itself, and the format from NIBBLE_LOAD_FORMAT', async () => {
    const file = writeConfig(path.join(tmp, 'configs', 'mistral-ish.json'),
      { architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 3000, eos_token_id: 2999 });
    await withServer(file, { env: { NIBBLE_LOAD_FORMAT: 'dummy' } }, async (server) => {
      assert.equal(server.modelName, 'mistral-ish');
      const r = await server.post('/v1/completions', { prompt: 'hi', max_tokens: 4, ignore_eos: true });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.usage.completion_tokens, 4);
    });
  });

  test('uses the tokenizer and chat template beside the config, reads no safetensors', async () => {
    const dir = path.join(tmp, 'demo-without-weights');
    const made = run(['make-demo-model', dir, '--preset', 'tiny']);
    assert.equal(made.code, 0, made.stderr);
    for (const f of fs.readdirSync(dir)) if (f.endsWith('.safetensors')) fs.rmSync(path.join(dir, f));
    // A model vocabulary larger than the tokenizer's (as Qwen2.5's is): the extra ids still decode.
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    config.vocab_size = 1024;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    await withServer(dir, { args: ['--load-format', 'dummy', '--threads', '2'] }, async (server) => {
      assert.match(server.output, /chat template: .*tokenizer_config\.json/);
      const r = await server.post('/v1/chat/completions', {
        messages: [{ role: 'user', content: 'Hi' }], max_tokens: 16, ignore_eos: true, logprobs: true,
      });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.usage.completion_tokens, 16);
      assert.equal(r.json.choices[0].logprobs.content.length, 16);
      const tokenized = await server.post('/tokenize', { prompt: 'Hello world' });
      assert.equal(tokenized.status, 200, tokenized.text);
      assert.ok(tokenized.json.tokens.every((id) => id < 512));
      const detokenized = await server.post('/detokenize', { tokens: [1000] });
      assert.equal(detokenized.status, 200, detokenized.text);
      assert.equal(detokenized.json.prompt, '<id_1000>');
    });
  });
});

test('load-format is a key of the serve TOML config', () => {
  const toml = path.join(tmp, 'nibble.toml');
  fs.writeFileSync(toml, `load-format = "dummy"\nmodel = "${folder}"\n`);
  const r = run(['serve', '--config', toml, '--check-config']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^load-format="dummy"$/m);
  fs.writeFileSync(toml, 'load-format = "bogus"\n');
  const bad = run(['serve', '--config', toml, '--check-config']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /load-format/);
});

describe('nibble generate --load-format dummy', () => {
  test('prints tokens and says the weights are dummy', () => {
    const r = run(['generate', '--load-format', 'dummy', '--model', folder, '--prompt', 'Hello', '--device', 'cpu',
      '--max-tokens', '8', '--ignore-eos', '--threads', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.trim().length > 0);
    assert.match(r.stderr, /generated tokens: 8/);
    assert.match(r.stderr, /dummy weights \(random, shapes of/);
    const chat = run(['generate', '--load-format', 'dummy', '--model', path.join(folder, 'config.json'), '--chat',
      '--prompt', 'Hello', '--device', 'cpu', '--max-tokens', '4', '--ignore-eos', '--threads', '2']);
    assert.equal(chat.code, 0, chat.stderr);
    assert.match(chat.stderr, /generated tokens: 4/);
  });
});

describe('bad input gets a clear error', () => {
  const failsWith = (r, pattern) => {
    assert.equal(r.signal, null, `crashed: ${r.stderr}`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, pattern);
  };

  test('a missing config, a folder without config.json, unsupported shapes, an unknown format', () => {
    const missing = path.join(tmp, 'no-such-config.json');
    failsWith(run(['serve', '--load-format', 'dummy', '--model', missing, '--port', '0', '--device', 'cpu']),
      /no-such-config\.json: no such config file or folder/);
    fs.mkdirSync(path.join(tmp, 'empty'), { recursive: true });
    failsWith(run(['generate', '--load-format', 'dummy', '--model', path.join(tmp, 'empty'), '--prompt', 'x']),
      /has no config\.json/);
    const odd = writeConfig(path.join(tmp, 'odd', 'config.json'), { intermediate_size: 250 });
    failsWith(run(['serve', '--load-format', 'dummy', '--model', odd, '--port', '0', '--device', 'cpu']),
      /divisible by 8/);
    const tiny = writeConfig(path.join(tmp, 'tiny-vocab', 'config.json'), { vocab_size: 256, bos_token_id: 1, eos_token_id: 2 });
    failsWith(run(['generate', '--load-format', 'dummy', '--model', tiny, '--prompt', 'x', '--device', 'cpu']),
      /tiny-vocab.*vocab_size 256 is below 300; put a tokenizer\.json beside the config/);
    const broken = path.join(tmp, 'broken.json');
    fs.writeFileSync(broken, '{"hidden_size": 64');
    failsWith(run(['generate', '--load-format', 'dummy', '--model', broken, '--prompt', 'x', '--device', 'cpu']),
      /broken\.json/);
    failsWith(run(['serve', '--load-format', 'bogus', '--model', folder]), /load-format.*bogus|bogus.*load-format/);
    failsWith(run(['generate', '--load-format', 'bogus', '--model', folder, '--prompt', 'x']),
      /load-format.*bogus|bogus.*load-format/);
    failsWith(run(['serve', '--model', folder, '--port', '0'], { NIBBLE_LOAD_FORMAT: 'bogus' }),
      /load-format.*bogus|bogus.*load-format|NIBBLE_LOAD_FORMAT/);
  });
});
