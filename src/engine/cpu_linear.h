#pragma once
// y = x W^T + b on the CPU in fp32 for one linear layer, dense or GPTQ. Each
// weight is converted to fp32 once per step and serves every token of it, so a
// prefill dequantizes each weight once per step, not once per token.
//  - GPTQ: dequantized one tile of input rows at a time; the tiles are split
//    between the threads, each summing into its own accumulator, and the parts
//    are added at the end.
//  - dense ([out][in]): output columns are split between the threads; each
//    weight row is converted and dotted with every token.
#include <optional>
#include <string>
#include <vector>

#include "cpu_gptq.h"
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
  void forward_gptq(const float* x, int rows, float* y, ThreadPool& pool) const;
  void forward_dense(const float* x, int rows, float* y, ThreadPool& pool) const;
  // Points row at weight row n in fp32: into the tensor for F32, else into buffer.
  void dense_row(int n, float* buffer, const float*& row) const;

  LinearWeights w_;
  std::optional<CpuGptqWeight> gptq_;
  std::vector<float> bias_;  // empty when absent
};

}  // namespace nibble
