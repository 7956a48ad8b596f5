#pragma once
// Tokenizers for `--load-format dummy` models, whose random weights may emit
// any id of the config's vocabulary.
//  - pad_vocabulary: wraps a tokenizer with fewer ids than the model so that
//    every id in [0, vocab_size) decodes; ids past the base tokenizer's decode
//    to the visible, non-special placeholder "<id_N>" (so streaming, stop
//    strings, usage counts and logprobs keep working on them).
//  - make_dummy_tokenizer: for a config without tokenizer files: the demo
//    tokenizer (byte-level BPE, encodes any text; Llama 3 style specials and
//    chat template) of min(vocab_size, 2048) ids, padded to vocab_size.
#include <memory>
#include <string>

#include "nibble/tokenizer/tokenizer.h"

namespace nibble {

// The text an id past the base vocabulary decodes to.
std::string dummy_token_placeholder(int32_t id);

// Returns base unchanged when it already covers vocab_size ids.
std::unique_ptr<Tokenizer> pad_vocabulary(std::unique_ptr<Tokenizer> base, int vocab_size);

// Throws nibble::Error when vocab_size is below 300 (the demo tokenizer's
// bytes and special tokens need that many ids).
std::unique_ptr<Tokenizer> make_dummy_tokenizer(int vocab_size);

}  // namespace nibble
