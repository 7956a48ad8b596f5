#include "cpu_gptq.h"

#include "cpu_math.h"

#include <algorithm>
#include <numeric>

#include "nibble/core/half.h"

namespace nibble {

CpuGptqWeight::CpuGptqWeight(const LinearWeights& w)
    : in_(w.in_features), out_(w.out_features), bits_(w.quant.bits), pack_(32 / w.quant.bits) {
  const int groups = static_cast<int>(w.scales.shape.at(0));
  const int group_size = w.quant.group_size > 0 ? w.quant.group_size : in_;
  std::vector<int32_t> g_idx(in_);
  if (w.g_idx.present())
    std::copy_n(static_cast<const int32_t*>(w.g_idx.data), in_, g_idx.begin());
  else
    for (int k = 0; k < in_; ++k) g_idx[k] = k / group_size;

  qweight_ = static_cast<const int32_t*>(w.qweight.data);
  const bool sorted = std::is_sorted(g_idx.begin(), g_idx.end());
  if (sorted) {
    row_group_ = std::move(g_idx);
  } else {
    perm_.resize(in_);
    std::iota(perm_.begin(), perm_.end(), 0);
    std::stable_sort(perm_.begin(), perm_.end(), [&](int32_t a, int32_t b) { return g_idx[a] < g_idx[b]; });
    row_group_.resize(in_);
    repacked_.assign(static_cast<size_t>(in_ / pack_) * out_, 0);
    const uint32_t mask = (1u << bits_) - 1;
    for (int k = 0; k < in_; ++k) {
      const int src = perm_[k];
      row_group_[k] = g_idx[src];
      const int32_t* from = qweight_ + static_cast<size_t>(src / pack_) * out_;
      const int from_shift = (src % pack_) * bits_;
      int32_t* to = repacked_.data() + static_cast<size_t>(k / pack_) * out_;
      const int to_shift = (k % pack_) * bits_;
      for (int n = 0; n < out_; ++n) {
        const uint32_t q = (static_cast<uint32_t>(from[n]) >> from_shift) & mask;
        to[n] = static_cast<int32_t>(static_cast<uint32_t>(to[n]) | (q << to_shift));
      }
    }
    qweight_ = repacked_.data();
  }

  const auto* scales = static_cast<const uint16_t*>(w.scales.data);
  const auto* qzeros = static_cast<const int32_t*>(w.qzeros.data);
  const uint32_t mask = (1u << bits_) - 1;
  const uint32_t zero_offset = w.quant.format == QuantConfig::Format::Gptq ? 1u : 0u;  // gptq stores zero - 1
  scales_.resize(static_cast<size_t>(groups) * out_);
  zeros_.resize(static_cast<size_t>(groups) * out_);
  for (int g = 0; g < groups; ++g) {
    for (int n = 0; n < out_; ++n) {
      const size_t i = static_cast<size_t>(g) * out_ + n;
      scales_[i] = fp16_to_float(scales[i]);
      const uint32_t packed = static_cast<uint32_t>(qzeros[static_cast<size_t>(g) * (out_ / pack_) + n / pack_]);
      zeros_[i] = static_cast<float>(((packed >> ((n % pack_) * bits_)) & mask) + zero_offset);
    }
  }
}

NIBBLE_VECTOR_CLONES void CpuGptqWeight::dequantize_rows(int k0, int k1, float* out) const {
  const uint32_t mask = (1u << bits_) - 1;
  for (int k = k0; k < k1; ++k) {
    const int32_t* __restrict words = qweight_ + static_cast<size_t>(k / pack_) * out_;
    const int shift = (k % pack_) * bits_;
    const float* __restrict scale = scales_.data() + static_cast<size_t>(row_group_[k]) * out_;
    const float* __restrict zero = zeros_.data() + static_cast<size_t>(row_group_[k]) * out_;
    float* __restrict dst = out + static_cast<size_t>(k - k0) * out_;
    for (int n = 0; n < out_; ++n) {
      const int32_t q = static_cast<int32_t>((static_cast<uint32_t>(words[n]) >> shift) & mask);
      dst[n] = (static_cast<float>(q) - zero[n]) * scale[n];
    }
  }
}

}  // namespace nibble
