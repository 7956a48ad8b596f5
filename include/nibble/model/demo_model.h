#pragma once
// Writes small, deterministic, randomly initialised model folders (config.json,
// generation_config.json, safetensors weights) for tests, demos and
// `nibble make-demo-model`. Tokenizer files are not written here.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nibble/core/dtype.h"
#include "nibble/model/config.h"

namespace nibble {

struct DemoModelOptions {
  // "tiny" (unit tests: hidden 64, 2 layers, 4 heads / 2 kv heads, intermediate
  // 192, group 32, sequential groups, 2048 positions) or "small" (hidden 256,
  // 4 layers, 8 heads / 2 kv heads, intermediate 768, group 128, act-order with
  // a random g_idx permutation, 4096 positions; Llama gets llama3 rope scaling).
  std::string preset = "tiny";
  // Qwen2 adds q/k/v biases and ties lm_head to the embeddings.
  Architecture architecture = Architecture::Llama;
  int vocab_size = 0;               // 0: the preset's (tiny 512, small 2048)
  std::vector<int> eos_token_ids;   // empty: {2}
  std::optional<int> bos_token_id = 1;
  uint64_t seed = 0;                // same seed, same bytes
  bool quantized = true;            // false: every linear dense in dense_dtype
  std::optional<QuantConfig> quant_override;  // replaces the preset's GPTQ settings
  DType dense_dtype = DType::F16;   // embeddings, norms, biases, lm_head, dense linears
  int shards = 1;                   // > 1: model-0000i-of-0000n.safetensors + index
};

// The config.json the options describe (also what write_demo_model_weights writes).
ModelConfig demo_model_config(const DemoModelOptions& options);

// Creates `dir` if needed and writes config.json (with quantization_config when
// quantized), generation_config.json and the weights, replacing any
// *.safetensors / index files already there. Throws nibble::Error for
// bad options or I/O failures.
void write_demo_model_weights(const std::filesystem::path& dir, const DemoModelOptions& options);

// Rewrites the GPTQ model in src_dir into dst_dir with every quantized linear
// replaced by its dequantized dense F32 weight [out, in]; other tensors are
// copied unchanged, config.json loses its quantization_config, and other
// non-weight files (generation_config.json, tokenizer files) are copied.
void write_dequantized_copy(const std::filesystem::path& src_dir, const std::filesystem::path& dst_dir,
                            int shards = 1);

// Writes `config` as a Hugging Face config.json text (used for demo models and
// `--load-format dummy` configs).
std::string model_config_json(const ModelConfig& config);

}  // namespace nibble
