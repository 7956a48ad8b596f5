// Tokenizer::from_* : reading tokenizer.json, tokenizer_config.json, generation_config.json
// and chat_template.jinja from disk.
#include <fstream>
#include <sstream>

#include "hf_tokenizer.h"
#include "nibble/core/error.h"

namespace nibble {

namespace {

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<Tokenizer> build(std::string_view tokenizer_json, tokenizer_detail::TokenizerConfig config,
                                 const std::string& name) {
  tokenizer_detail::BpeTables tables;
  const nlohmann::json spec = tokenizer_detail::parse_tokenizer_json(tokenizer_json, tables, name);
  return std::make_unique<tokenizer_detail::HfTokenizer>(spec, std::move(tables), std::move(config), name);
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_json_text(std::string_view tokenizer_json, std::string_view config_json,
                                                     const std::string& name) {
  return build(tokenizer_json, tokenizer_detail::parse_tokenizer_config(config_json, name + " (tokenizer_config)"),
               name);
}

std::unique_ptr<Tokenizer> Tokenizer::from_files(const std::filesystem::path& tokenizer_json,
                                                 const std::optional<std::filesystem::path>& tokenizer_config) {
  tokenizer_detail::TokenizerConfig config;
  if (tokenizer_config) {
    config = tokenizer_detail::parse_tokenizer_config(read_text_file(*tokenizer_config), tokenizer_config->string());
  }
  return build(read_text_file(tokenizer_json), std::move(config), tokenizer_json.string());
}

std::unique_ptr<Tokenizer> Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  const auto dir = tokenizer_json.parent_path();
  tokenizer_detail::TokenizerConfig config;
  if (const auto cfg = dir / "tokenizer_config.json"; std::filesystem::exists(cfg)) {
    config = tokenizer_detail::parse_tokenizer_config(read_text_file(cfg), cfg.string());
  }
  if (const auto tmpl = dir / "chat_template.jinja"; !config.chat_template && std::filesystem::exists(tmpl)) {
    config.chat_template = read_text_file(tmpl);
  }
  if (const auto gen = dir / "generation_config.json"; std::filesystem::exists(gen)) {
    config.extra_eos_ids = tokenizer_detail::parse_generation_eos_ids(read_text_file(gen), gen.string());
  }
  return build(read_text_file(tokenizer_json), std::move(config), tokenizer_json.string());
}

std::unique_ptr<Tokenizer> Tokenizer::from_model_dir(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "tokenizer.json";
  if (!std::filesystem::exists(path)) {
    throw Error(model_dir.string() + ": no tokenizer.json (nibble reads Hugging Face tokenizer.json files)");
  }
  return from_file(path);
}

}  // namespace nibble
