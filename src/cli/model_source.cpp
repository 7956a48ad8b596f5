#include "model_source.h"

#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "load_progress.h"
#include "nibble/core/error.h"
#include "nibble/model/config.h"
#include "nibble/model/dummy_weights.h"
#include "nibble/tokenizer/dummy_tokenizer.h"

namespace nibble::cli {
namespace fs = std::filesystem;

ModelSource resolve_model_source(const std::string& model, const std::string& load_format) {
  NIBBLE_CHECK(load_format == "auto" || load_format == "dummy",
               fmt::format("--load-format {}: unknown format (use auto or dummy)", load_format));
  NIBBLE_CHECK(!model.empty(), "--model is required (on the command line, in --config or as NIBBLE_MODEL)");
  ModelSource s;
  s.dummy = load_format == "dummy";
  s.path = model;
  std::error_code ec;
  if (s.dummy && fs::is_regular_file(s.path, ec)) {
    s.dir = s.path.parent_path().empty() ? fs::path(".") : s.path.parent_path();
    s.name = s.path.stem().string();
    return s;
  }
  if (!fs::is_directory(s.path, ec))
    throw_error(s.dummy ? fmt::format("--model {}: no such config file or folder", model)
                        : fmt::format("--model {}: no such folder", model));
  if (s.dummy && !fs::is_regular_file(s.path / "config.json", ec))
    throw_error(fmt::format("--model {}: the folder has no config.json (--load-format dummy needs one)", model));
  s.dir = s.path;
  s.name = fs::absolute(s.path).filename().string();
  if (s.name.empty() || s.name == ".") s.name = fs::canonical(s.path).filename().string();
  return s;
}

EngineModel load_engine_model(const ModelSource& source, const BackendOptions& options) {
  EngineModel m;
  if (!source.dummy) {
    LoadOptions load_options;
    load_options.on_progress = make_load_progress_reporter();
    m.model = load_model(source.path, load_options);
    m.config = m.model->config();
    m.generation = m.model->generation_config();
    m.weights = fs::absolute(source.path).string();
    m.backend = make_backend(*m.model, options);
    return m;
  }
  m.config = load_model_config(source.path);
  m.weights = fmt::format("dummy weights (random, shapes of {})", source.path.string());
  spdlog::info("generating {}", m.weights);
  DummyBackend dummy = make_dummy_backend(m.config, source.path, options, /*seed=*/0);
  m.config.quant = dummy_weights_quant(m.config);
  m.model = std::move(dummy.host_weights);
  m.backend = std::move(dummy.backend);
  if (m.model) {
    m.generation = m.model->generation_config();
  } else {
    m.generation = load_generation_config(source.dir);
    if (m.generation.eos_token_ids.empty()) m.generation.eos_token_ids = m.config.eos_token_ids;
    if (!m.generation.bos_token_id) m.generation.bos_token_id = m.config.bos_token_id;
  }
  return m;
}

std::unique_ptr<Tokenizer> load_model_tokenizer(const ModelSource& source) {
  if (!source.dummy) return Tokenizer::from_model_dir(source.dir);
  const int model_vocab_size = load_model_config(source.path).vocab_size;
  std::error_code ec;
  if (fs::is_regular_file(source.dir / "tokenizer.json", ec))
    return pad_vocabulary(Tokenizer::from_model_dir(source.dir), model_vocab_size);
  spdlog::info("{} has no tokenizer.json: using the demo tokenizer (ids past its {} decode as {})",
               source.dir.string(), std::min(model_vocab_size, 2048), dummy_token_placeholder(model_vocab_size - 1));
  try {
    return make_dummy_tokenizer(model_vocab_size);
  } catch (const Error& e) {
    throw Error(source.path.string() + ": " + e.what());
  }
}

ChatSource load_model_chat_template(const ModelSource& source, const Tokenizer& tokenizer) {
  ChatSource chat;
  const fs::path tokenizer_config = source.dir / "tokenizer_config.json";
  std::error_code ec;
  if (!source.dummy || fs::is_regular_file(tokenizer_config, ec)) {
    chat.config = load_chat_template_config(tokenizer_config.string());
    chat.origin = chat.config.is_fallback ? "generic ChatML (the model has none)" : tokenizer_config.string();
    return chat;
  }
  // A dummy model without tokenizer files: the demo tokenizer's Llama 3 style template.
  chat.config.special_tokens = nlohmann::ordered_json(tokenizer.special_tokens_map());
  if (auto source_text = tokenizer.chat_template()) {
    chat.config.source = *source_text;
    chat.origin = "built-in Llama 3 style (the demo tokenizer's)";
  } else {
    chat.config.source = kFallbackChatTemplate;
    chat.config.is_fallback = true;
    chat.origin = "generic ChatML (no tokenizer_config.json)";
  }
  return chat;
}

}  // namespace nibble::cli
