#pragma once
// GPTQ weight packing and unpacking (AutoGPTQ / GPTQModel layout), CPU side.
// These are the reference semantics every backend and kernel is tested against.
#include <cstdint>
#include <span>
#include <vector>

#include "nibble/model/config.h"
#include "nibble/model/weights.h"

namespace nibble {

// Dequantizes input rows [k_begin, k_end) of a GPTQ linear layer to fp32, written
// row-major as out[(k - k_begin) * out_features + n] = W[n][k] (the transposed,
// "in x out" layout that qweight itself uses). Honours g_idx (act-order),
// bits 4/8, sym/asym and checkpoint format (gptq stores zero-1).
void gptq_dequantize_rows(const LinearWeights& w, int k_begin, int k_end, float* out);

// The tensors of one quantized linear layer, owned.
struct GptqTensors {
  std::vector<int32_t> qweight;  // [in / pack, out]
  std::vector<int32_t> qzeros;   // [groups, out / pack]
  std::vector<uint16_t> scales;  // fp16 [groups, out]
  std::vector<int32_t> g_idx;    // [in]
  int groups = 0;
};

// Round-to-nearest quantization of a dense weight given as w_t[k * out + n] =
// W[n][k]. g_idx assigns each input row k its group; empty means sequential
// groups (k / group_size). Used by the demo-model writer and by tests.
GptqTensors gptq_quantize(const float* w_t, int in_features, int out_features, const QuantConfig& q,
                          std::span<const int32_t> g_idx = {});

// A view of owned GPTQ tensors as LinearWeights (pointers into t).
LinearWeights gptq_view(const GptqTensors& t, int in_features, int out_features, const QuantConfig& q);

}  // namespace nibble
