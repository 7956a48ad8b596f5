#pragma once
// Loads a Hugging Face-style model folder: config.json (+ quantize_config.json,
// generation_config.json) and model.safetensors or a sharded
// model.safetensors.index.json, mapped into memory and validated against the
// config. Every error names the file and the tensor at fault.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "nibble/model/config.h"
#include "nibble/model/weights.h"

namespace nibble {

struct LoadProgress {
  size_t done = 0;   // tensors checked so far
  size_t total = 0;  // tensors to check
};

struct LoadOptions {
  // Called as tensors are validated; may be empty.
  std::function<void(const LoadProgress&)> on_progress;
  // Map the safetensors files (the default); false reads them into memory,
  // which suits filesystems without mmap and lets memory checkers see reads.
  bool use_mmap = true;
};

class LoadedModel {
 public:
  virtual ~LoadedModel() = default;
  virtual const std::filesystem::path& dir() const = 0;
  virtual const ModelConfig& config() const = 0;
  virtual const GenerationConfig& generation_config() const = 0;
  virtual const ModelWeights& weights() const = 0;  // views valid while this object lives
};

// Loads and validates model_dir. Each linear is GPTQ or dense according to the
// tensors present (PREFIX.qweight or PREFIX.weight), so a GPTQ checkpoint may
// keep some linears (usually lm_head) dense. After load every GPTQ linear has
// a g_idx view (a sequential one is made when the checkpoint has none, and
// every entry is checked to name an existing group), every view's data is
// aligned to its dtype size, and generation_config() falls back to
// config.json's bos/eos ids when generation_config.json does not give them.
// Throws nibble::Error naming the file and tensor at fault.
std::unique_ptr<LoadedModel> load_model(const std::filesystem::path& model_dir, const LoadOptions& options = {});

}  // namespace nibble
