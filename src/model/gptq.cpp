#include "nibble/model/gptq.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "nibble/core/error.h"
#include "nibble/core/half.h"
#include "nibble/model/weight_names.h"

namespace nibble {
namespace {

int pack_factor(const QuantConfig& q) {
  if (q.bits != 4 && q.bits != 8) throw Error("GPTQ bits must be 4 or 8, got " + std::to_string(q.bits));
  return 32 / q.bits;
}

// Tensor data may sit at any byte offset; read through memcpy.
template <typename T>
T load(const void* base, size_t index) {
  T v;
  std::memcpy(&v, static_cast<const std::byte*>(base) + index * sizeof(T), sizeof(T));
  return v;
}

int32_t group_of(const LinearWeights& w, int k) {
  if (w.g_idx.present()) return load<int32_t>(w.g_idx.data, static_cast<size_t>(k));
  return w.quant.group_size > 0 ? k / w.quant.group_size : 0;
}

}  // namespace

void gptq_dequantize_rows(const LinearWeights& w, int k_begin, int k_end, float* out) {
  if (!w.quantized) throw Error("gptq_dequantize_rows: linear '" + w.qweight.name + "' is not quantized");
  const int pack = pack_factor(w.quant);
  const int in = w.in_features;
  const int n_out = w.out_features;
  if (k_begin < 0 || k_end < k_begin || k_end > in)
    throw Error("gptq_dequantize_rows: rows [" + std::to_string(k_begin) + ", " + std::to_string(k_end) +
                ") outside [0, " + std::to_string(in) + ")");
  if (!w.qweight.present() || !w.qzeros.present() || !w.scales.present())
    throw Error("gptq_dequantize_rows: linear '" + w.qweight.name + "' lacks qweight, qzeros or scales");
  const int groups = gptq_groups(in, w.quant);
  const uint32_t mask = (1u << w.quant.bits) - 1;
  const int zero_offset = w.quant.format == QuantConfig::Format::Gptq ? 1 : 0;
  const size_t zero_cols = static_cast<size_t>(n_out / pack);
  std::vector<float> zeros(static_cast<size_t>(n_out));
  int cached_group = -1;

  for (int k = k_begin; k < k_end; ++k) {
    const int32_t g = group_of(w, k);
    if (g < 0 || g >= groups)
      throw Error("gptq_dequantize_rows: g_idx[" + std::to_string(k) + "] = " + std::to_string(g) + " outside " +
                  std::to_string(groups) + " groups");
    if (g != cached_group) {
      for (int n = 0; n < n_out; ++n) {
        const auto packed = static_cast<uint32_t>(load<int32_t>(w.qzeros.data, g * zero_cols + n / pack));
        zeros[n] = static_cast<float>(((packed >> (w.quant.bits * (n % pack))) & mask) + zero_offset);
      }
      cached_group = g;
    }
    const size_t row = static_cast<size_t>(k / pack) * n_out;
    const int shift = w.quant.bits * (k % pack);
    float* dst = out + static_cast<size_t>(k - k_begin) * n_out;
    for (int n = 0; n < n_out; ++n) {
      const auto packed = static_cast<uint32_t>(load<int32_t>(w.qweight.data, row + n));
      const float q = static_cast<float>((packed >> shift) & mask);
      const float scale = fp16_to_float(load<uint16_t>(w.scales.data, static_cast<size_t>(g) * n_out + n));
      dst[n] = (q - zeros[n]) * scale;
    }
  }
}

GptqTensors gptq_quantize(const float* w_t, int in_features, int out_features, const QuantConfig& q,
                          std::span<const int32_t> g_idx) {
  const int pack = pack_factor(q);
  if (in_features <= 0 || out_features <= 0 || in_features % pack != 0 || out_features % pack != 0)
    throw Error("gptq_quantize: shape [" + std::to_string(out_features) + ", " + std::to_string(in_features) +
                "] cannot be packed " + std::to_string(pack) + " values per int32");
  const int groups = gptq_groups(in_features, q);
  const int group_size = q.group_size > 0 ? q.group_size : in_features;
  GptqTensors t;
  t.groups = groups;
  if (g_idx.empty()) {
    t.g_idx.resize(static_cast<size_t>(in_features));
    for (int k = 0; k < in_features; ++k) t.g_idx[k] = k / group_size;
  } else {
    if (g_idx.size() != static_cast<size_t>(in_features))
      throw Error("gptq_quantize: g_idx has " + std::to_string(g_idx.size()) + " entries, expected " +
                  std::to_string(in_features));
    for (int32_t g : g_idx)
      if (g < 0 || g >= groups) throw Error("gptq_quantize: g_idx entry " + std::to_string(g) + " out of range");
    t.g_idx.assign(g_idx.begin(), g_idx.end());
  }

  const int maxq = (1 << q.bits) - 1;
  const size_t n_out = static_cast<size_t>(out_features);
  // Per group and column: the range of the weights, then scale and zero.
  std::vector<float> lo(groups * n_out, 0.0f), hi(groups * n_out, 0.0f);  // ranges always include 0
  for (int k = 0; k < in_features; ++k) {
    const size_t base = static_cast<size_t>(t.g_idx[k]) * n_out;
    for (size_t n = 0; n < n_out; ++n) {
      const float v = w_t[static_cast<size_t>(k) * n_out + n];
      lo[base + n] = std::min(lo[base + n], v);
      hi[base + n] = std::max(hi[base + n], v);
    }
  }
  std::vector<float> scale(groups * n_out);
  std::vector<int> zero(groups * n_out);
  t.scales.resize(groups * n_out);
  for (size_t i = 0; i < scale.size(); ++i) {
    float xmin = lo[i], xmax = hi[i];
    if (q.sym) {
      xmax = std::max(-xmin, xmax);
      xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
      xmin = -1.0f;
      xmax = 1.0f;
    }
    float s = (xmax - xmin) / static_cast<float>(maxq);
    int z = q.sym ? (maxq + 1) / 2 : static_cast<int>(std::lround(-xmin / s));
    // Format gptq stores zero-1, so a zero of 0 cannot be stored faithfully
    // (AutoGPTQ's v1 quirk): use zero 1 and stretch the scale to keep xmax.
    if (!q.sym && z == 0 && q.format == QuantConfig::Format::Gptq) {
      z = 1;
      s = xmax / static_cast<float>(maxq - 1);
    }
    uint16_t s_half = float_to_fp16(s);
    if ((s_half & 0x7fffu) == 0) s_half = 1;  // smallest subnormal: never a zero scale
    t.scales[i] = s_half;
    scale[i] = fp16_to_float(s_half);
    zero[i] = std::clamp(z, 0, maxq);
  }

  t.qweight.assign(static_cast<size_t>(in_features / pack) * n_out, 0);
  for (int k = 0; k < in_features; ++k) {
    const size_t base = static_cast<size_t>(t.g_idx[k]) * n_out;
    const size_t row = static_cast<size_t>(k / pack) * n_out;
    const int shift = q.bits * (k % pack);
    for (size_t n = 0; n < n_out; ++n) {
      const float v = w_t[static_cast<size_t>(k) * n_out + n];
      const long qv = std::clamp(std::lround(v / scale[base + n]) + zero[base + n], 0L, static_cast<long>(maxq));
      auto packed = static_cast<uint32_t>(t.qweight[row + n]);
      packed |= static_cast<uint32_t>(qv) << shift;
      t.qweight[row + n] = static_cast<int32_t>(packed);
    }
  }

  const uint32_t mask = static_cast<uint32_t>(maxq);
  const size_t zero_cols = n_out / static_cast<size_t>(pack);
  t.qzeros.assign(static_cast<size_t>(groups) * zero_cols, 0);
  for (int g = 0; g < groups; ++g) {
    for (size_t n = 0; n < n_out; ++n) {
      const int z = zero[static_cast<size_t>(g) * n_out + n];
      const uint32_t stored =
          static_cast<uint32_t>(q.format == QuantConfig::Format::Gptq ? z - 1 : z) & mask;
      auto& word = t.qzeros[static_cast<size_t>(g) * zero_cols + n / pack];
      word = static_cast<int32_t>(static_cast<uint32_t>(word) | (stored << (q.bits * (n % pack))));
    }
  }
  return t;
}

LinearWeights gptq_view(const GptqTensors& t, int in_features, int out_features, const QuantConfig& q) {
  const int pack = pack_factor(q);
  LinearWeights w;
  w.in_features = in_features;
  w.out_features = out_features;
  w.quantized = true;
  w.quant = q;
  w.quant.quantized = true;
  const int64_t groups = t.groups;
  w.qweight = TensorView{"qweight", DType::I32, {in_features / pack, out_features}, t.qweight.data()};
  w.qzeros = TensorView{"qzeros", DType::I32, {groups, out_features / pack}, t.qzeros.data()};
  w.scales = TensorView{"scales", DType::F16, {groups, out_features}, t.scales.data()};
  w.g_idx = TensorView{"g_idx", DType::I32, {in_features}, t.g_idx.empty() ? nullptr : t.g_idx.data()};
  const size_t expect_q = static_cast<size_t>(in_features / pack) * out_features;
  const size_t expect_z = static_cast<size_t>(groups) * (out_features / pack);
  if (t.qweight.size() != expect_q || t.qzeros.size() != expect_z ||
      t.scales.size() != static_cast<size_t>(groups) * out_features ||
      (!t.g_idx.empty() && t.g_idx.size() != static_cast<size_t>(in_features)) ||
      groups != gptq_groups(in_features, q))
    throw Error("gptq_view: tensor sizes do not match [" + std::to_string(out_features) + ", " +
                std::to_string(in_features) + "] with the given quantization");
  return w;
}

}  // namespace nibble
