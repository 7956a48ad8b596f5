#pragma once
// Host-side views of a loaded model's weights. Every tensor of an architecture
// is named in one place (model/weight_names); these structs are what the
// backends consume. Views point into mmapped files owned by the loaded model
// (or into owned buffers for generated weights), so they are cheap to copy.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nibble/core/dtype.h"
#include "nibble/model/config.h"

namespace nibble {

struct TensorView {
  std::string name;             // full tensor name in the checkpoint
  DType dtype = DType::F32;
  std::vector<int64_t> shape;   // row-major, as stored
  const void* data = nullptr;   // null when absent

  bool present() const { return data != nullptr; }
  int64_t numel() const;
  size_t nbytes() const;
};

// A linear layer y = x W^T + b with W of shape [out_features, in_features].
// Either dense (weight) or GPTQ (qweight, qzeros, scales, g_idx) in the
// AutoGPTQ layout: qweight int32 [in/pack, out], qzeros int32 [groups, out/pack],
// scales fp16 [groups, out], g_idx int32 [in], pack = 32 / bits.
struct LinearWeights {
  int in_features = 0;
  int out_features = 0;
  bool quantized = false;
  QuantConfig quant;      // meaningful when quantized
  TensorView weight;      // dense
  TensorView qweight, qzeros, scales, g_idx;
  TensorView bias;        // optional
};

struct LayerWeights {
  TensorView input_layernorm;           // [hidden]
  TensorView post_attention_layernorm;  // [hidden]
  LinearWeights q_proj, k_proj, v_proj, o_proj;
  LinearWeights gate_proj, up_proj, down_proj;
};

struct ModelWeights {
  ModelConfig config;
  TensorView embed_tokens;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  TensorView norm;          // [hidden]
  LinearWeights lm_head;    // dense; its weight is embed_tokens when tied
};

}  // namespace nibble
