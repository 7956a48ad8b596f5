#pragma once
// A GPTQ linear layer prepared for fast CPU dequantization. With act-order
// (g_idx not sequential) the input rows are permuted once at load so that each
// group's rows are contiguous (ExLlamaV2's make_sequential): qweight is
// repacked in that order and callers gather the activations by perm(). fp16
// scales and packed zeros are widened to fp32 per group once. Every value equals
// what gptq_dequantize_rows gives for the same (original) row, bit for bit.
#include <cstdint>
#include <vector>

#include "nibble/model/weights.h"

namespace nibble {

class CpuGptqWeight {
 public:
  // The tensors have been checked for shape and dtype.
  explicit CpuGptqWeight(const LinearWeights& w);

  int pack() const { return pack_; }
  // Row k of the prepared weight is input row perm()[k]; empty means identity.
  const std::vector<int32_t>& perm() const { return perm_; }

  // out[(k - k0) * out_features + n] = W[n][row k of the prepared order].
  void dequantize_rows(int k0, int k1, float* out) const;

 private:
  int in_ = 0, out_ = 0, bits_ = 4, pack_ = 8;
  const int32_t* qweight_ = nullptr;        // the checkpoint's, or repacked_
  std::vector<int32_t> repacked_;           // act-order only
  std::vector<int32_t> perm_;               // act-order only
  std::vector<int32_t> row_group_;          // [in], in the prepared order
  std::vector<float> scales_, zeros_;       // [groups][out]
};

}  // namespace nibble
