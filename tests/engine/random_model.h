#pragma once
// In-memory models with random weights for engine tests: dense F32/F16/BF16 or
// GPTQ (random packed integers, fp16 scales, optional act-order g_idx), for any
// of the supported architectures, without touching the disk.
#include <cstdint>
#include <memory>
#include <optional>

#include "nibble/model/loader.h"

namespace nibble::test {

struct RandomModelSpec {
  Architecture architecture = Architecture::Llama;
  int hidden_size = 64;
  int intermediate_size = 96;
  int num_layers = 2;
  int num_heads = 4;
  int num_kv_heads = 2;
  int head_dim = 16;
  int vocab_size = 97;
  DType dtype = DType::F32;  // dense weights, norms and embeddings
  bool tie_word_embeddings = false;
  RopeScaling rope_scaling;
  double rope_theta = 10000.0;
  std::optional<QuantConfig> quant;  // GPTQ linear layers when set
  uint32_t seed = 1;
};

std::unique_ptr<LoadedModel> make_random_model(const RandomModelSpec& spec);

// The same model with every GPTQ linear layer dequantized into dense F32. The
// copy shares the other tensors with `model`, which must outlive it.
std::unique_ptr<LoadedModel> dequantized_copy(const LoadedModel& model);

}  // namespace nibble::test
