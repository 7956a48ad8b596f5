#pragma once
// The one place that names every tensor of the supported architectures (the
// gemma.cpp ForEachTensor idea): loading, validation and the demo-model writer
// all walk the same list, so a tensor cannot be known to one and not another.
// Names follow Hugging Face checkpoints (model.layers.N.self_attn.q_proj...).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nibble/model/config.h"
#include "nibble/model/weights.h"

namespace nibble {

// Which dtypes a tensor may be stored in.
enum class DTypeClass {
  Float,  // F16, BF16 or F32 (embeddings, norms, dense weights, biases)
  Int32,  // I32 (qweight, qzeros, g_idx)
  F16,    // F16 only (GPTQ scales)
};

bool dtype_in_class(DType t, DTypeClass c);
std::string dtype_class_name(DTypeClass c);

struct TensorSpec {
  std::string name;
  DTypeClass dtype_class = DTypeClass::Float;
  std::vector<int64_t> shape;
  bool required = true;
};

// A linear layer y = x W^T + b; stored either dense (PREFIX.weight [out, in])
// or GPTQ (PREFIX.qweight/.qzeros/.scales/.g_idx), plus an optional PREFIX.bias.
struct LinearSpec {
  std::string prefix;
  int in_features = 0;
  int out_features = 0;
  bool bias_required = false;  // the config says this layer has a bias
};

// The tensors that make up a linear in one storage form. g_idx is optional in
// GPTQ checkpoints (sequential when absent) and bias is optional unless
// bias_required. Throws nibble::Error when the shape cannot be GPTQ-packed.
std::vector<TensorSpec> linear_tensor_specs(const LinearSpec& spec, bool quantized, const QuantConfig& q);

// Number of quantization groups of a linear with in_features input rows.
int gptq_groups(int in_features, const QuantConfig& q);

struct WeightVisitor {
  std::function<void(const TensorSpec&, TensorView&)> tensor;
  std::function<void(const LinearSpec&, LinearWeights&)> linear;
};

// Visits every weight of the architecture `c` in checkpoint order, with the
// slot of `w` it belongs in (w.layers is resized to the layer count). The
// lm_head is visited only when it is not tied to the embeddings; call
// tie_word_embeddings() afterwards to fill it in the tied case.
void for_each_weight(const ModelConfig& c, ModelWeights& w, const WeightVisitor& visit);

// Bytes of every weight view of w (a tied lm_head counted once): what a decode
// step at batch 1 must read, the floor of its memory traffic.
uint64_t total_weight_bytes(const ModelConfig& c, const ModelWeights& w);

// When c.tie_word_embeddings, makes w.lm_head a dense view of w.embed_tokens.
void tie_word_embeddings(const ModelConfig& c, ModelWeights& w);

}  // namespace nibble
