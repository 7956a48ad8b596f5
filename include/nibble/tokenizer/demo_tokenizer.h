#pragma once
// The tokenizer of nibble's demo model: a byte-level BPE in the Llama 3 style, trained
// deterministically (same output on every machine) on a few embedded English paragraphs.
//  - ids 0..255: the 256 bytes (GPT-2 byte-to-character mapping), then the learned merges;
//  - special tokens <|begin_of_text|>, <|end_of_text|>, <|start_header_id|>,
//    <|end_header_id|>, <|eot_id|>, then <|reserved_special_token_N|> up to vocab_size;
//  - a GPT-2 split regex, a TemplateProcessing post-processor adding <|begin_of_text|>;
//  - tokenizer_config.json with bos/eos tokens and a Llama 3 style chat template
//    (system/user/assistant/tool roles, tools, add_generation_prompt).
#include <string>

namespace nibble {

struct DemoTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};

// vocab_size: total ids, special tokens included (512 for the `tiny` preset, 2048 for
// `small`). Throws nibble::Error below 300 or above 65536.
DemoTokenizerFiles make_demo_tokenizer(int vocab_size);

// The embedded training text (also a handy corpus for tests).
const std::string& demo_tokenizer_training_text();

}  // namespace nibble
