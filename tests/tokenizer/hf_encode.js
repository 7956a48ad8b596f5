// Encodes a list of strings with Hugging Face's tokenizer (npm `tokenizers`).
// Usage: node hf_encode.js NODE_MODULES_DIR TOKENIZER_JSON CORPUS_JSON OUT_JSON
'use strict';
const fs = require('fs');
const path = require('path');

const [nodeModules, tokenizerFile, corpusFile, outFile] = process.argv.slice(2);
const { Tokenizer } = require(path.resolve(nodeModules, 'tokenizers'));

(async () => {
  const tok = Tokenizer.fromFile(tokenizerFile);
  const corpus = JSON.parse(fs.readFileSync(corpusFile, 'utf8'));
  const out = [];
  for (const text of corpus) {
    const withIds = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
    const withoutIds = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    out.push({ with_special: withIds, without_special: withoutIds, decode: await tok.decode(withIds, false),
               decode_skip: await tok.decode(withIds, true) });
  }
  fs.writeFileSync(outFile, JSON.stringify({ vocab_size: tok.getVocabSize(true), results: out }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
