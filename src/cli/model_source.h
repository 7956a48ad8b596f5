#pragma once
// What `--model` and `--load-format` name, resolved for `serve` and `generate`:
// a checkpoint folder (auto), or a config.json (file or folder) whose shapes
// get random weights (dummy). Both commands load through these so the two
// formats behave the same everywhere.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "nibble/chat/chat_template.h"
#include "nibble/engine/backend.h"
#include "nibble/engine/backend_factory.h"
#include "nibble/model/loader.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble::cli {

// The values --load-format accepts.
inline const std::vector<std::string> kLoadFormats = {"auto", "dummy"};

struct ModelSource {
  bool dummy = false;
  std::filesystem::path path;  // --model as given
  std::filesystem::path dir;   // the folder of the tokenizer and chat template files
  std::string name;            // default model id: the folder's name, or a config file's stem
};

// Checks that the path exists in the form the format needs. Throws nibble::Error.
ModelSource resolve_model_source(const std::string& model, const std::string& load_format);

// The weights and the backend that runs them.
struct EngineModel {
  ModelConfig config;  // as run (dummy: with the dummy weights' quantization)
  GenerationConfig generation;
  std::string weights;                 // for logs: the folder, or "dummy weights (random, shapes of ...)"
  std::unique_ptr<LoadedModel> model;  // the checkpoint or host dummy weights; null for CUDA dummy weights
  std::unique_ptr<Backend> backend;    // declared after model: destroyed first
};
EngineModel load_engine_model(const ModelSource& source, const BackendOptions& options);

// The model's tokenizer; a dummy model's folder may lack one (the demo
// tokenizer then stands in), and every id of its vocabulary decodes.
std::unique_ptr<Tokenizer> load_model_tokenizer(const ModelSource& source);

// The chat template and special tokens, and where they came from (for the log).
struct ChatSource {
  ChatTemplateConfig config;
  std::string origin;
};
ChatSource load_model_chat_template(const ModelSource& source, const Tokenizer& tokenizer);

}  // namespace nibble::cli
