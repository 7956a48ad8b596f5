#include "gptq_gemm/gptq_gemm_ref.h"

#include <vector>

#include "nibble/core/half.h"

namespace nibble::kernels {

void gptq_dequantize_ref(const GptqCheckpointView& w, float* out) {
  gptq_validate(w);
  const int bits = w.bits, pack = 32 / bits;
  const uint32_t mask = (1u << bits) - 1;
  const auto* qweight = reinterpret_cast<const uint32_t*>(w.qweight);
  const auto* qzeros = reinterpret_cast<const uint32_t*>(w.qzeros);
  for (int64_t k = 0; k < w.K; ++k) {
    const int64_t g = w.g_idx ? w.g_idx[k] : (w.group_size <= 0 ? 0 : k / w.group_size);
    for (int64_t n = 0; n < w.N; ++n) {
      const uint32_t q = (qweight[(k / pack) * w.N + n] >> (bits * (k % pack))) & mask;
      const uint32_t z = ((qzeros[g * (w.N / pack) + n / pack] >> (bits * (n % pack))) & mask) +
                         (w.zero_minus_one ? 1u : 0u);
      const float scale = fp16_to_float(w.scales[g * w.N + n]);
      out[k * w.N + n] = (static_cast<float>(q) - static_cast<float>(z)) * scale;
    }
  }
}

void gptq_gemm_ref(const GptqCheckpointView& w, const uint16_t* x, int64_t M, const uint16_t* bias, float* y) {
  std::vector<float> weight(static_cast<size_t>(w.K * w.N));
  gptq_dequantize_ref(w, weight.data());
  std::vector<float> row(static_cast<size_t>(w.N));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < w.N; ++n) row[n] = bias ? fp16_to_float(bias[n]) : 0.0f;
    for (int64_t k = 0; k < w.K; ++k) {
      const float xv = fp16_to_float(x[m * w.K + k]);
      const float* wk = weight.data() + k * w.N;
      for (int64_t n = 0; n < w.N; ++n) row[n] += xv * wk[n];
    }
    for (int64_t n = 0; n < w.N; ++n) y[m * w.N + n] = row[n];
  }
}

}  // namespace nibble::kernels
