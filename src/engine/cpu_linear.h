#pragma once
// y = x W^T + b on the CPU in fp32 for one linear layer, dense or GPTQ. The
// weight is materialised in fp32 one tile of input rows at a time (GPTQ through
// gptq_dequantize_rows), and each tile serves every token of the step, so a
// prefill dequantizes each weight once per step, not once per token.
#include <string>
#include <vector>

#include "nibble/core/thread_pool.h"
#include "nibble/model/weights.h"

namespace nibble {

class CpuLinear {
 public:
  // Checks dtypes and shapes; `what` names the layer in error messages.
  CpuLinear(const LinearWeights& w, const std::string& what);

  int in_features() const { return w_.in_features; }
  int out_features() const { return w_.out_features; }

  // y[t * out + n] = sum_k x[t * in + k] * W[n][k] + b[n] for t < rows.
  void forward(const float* x, int rows, float* y, ThreadPool& pool) const;

 private:
  // out[(k - k0) * out_features + n] = W[n][k] for k in [k0, k1).
  void load_rows(int k0, int k1, float* out) const;

  LinearWeights w_;
  std::vector<float> bias_;  // empty when absent
  int row_align_ = 1;        // tiles start at multiples of this (the GPTQ pack factor)
};

}  // namespace nibble
