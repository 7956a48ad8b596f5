#include "cpu_linear.h"

#include "cpu_dense.h"
#include "cpu_math.h"

#include <algorithm>
#include <cstring>

#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble {

namespace {

// Threads split the input rows at multiples of kSplitRows; each dequantizes
// tiles of kTileRows rows (kSmallTileRows when few tokens share the step, so
// the tile stays in L1). All are multiples of 4 (multiply_rows folds four rows
// at a time), so a token's sums never depend on the tile size.
constexpr int kSplitRows = 32;
constexpr int kTileRows = 32;
constexpr int kSmallTileRows = 8;
constexpr int kColBlock = 256;  // output columns per cache block of the multiply
constexpr int kRowBlock = 4;    // tokens sharing each weight load

void check_tensor(const TensorView& t, DType dtype, std::vector<int64_t> shape, const std::string& what) {
  NIBBLE_CHECK(t.present(), what + ": tensor " + t.name + " is missing");
  NIBBLE_CHECK(t.dtype == dtype, what + ": tensor " + t.name + " has dtype " + std::string(dtype_name(t.dtype)) +
                                     ", expected " + std::string(dtype_name(dtype)));
  NIBBLE_CHECK(t.shape == shape,
               what + ": tensor " + t.name + " has shape " + shape_string(t.shape) + ", expected " + shape_string(shape));
}

// y[r][0:cols) += sum_k x[r][k] * tile[k][0:cols) for R rows. Four input rows
// are folded into each update of y; the order of the sums does not depend on R,
// so a token's result does not depend on how many tokens share the step.
template <int R>
[[gnu::always_inline]] inline void multiply_rows(const float* x, int ldx, const float* tile, int ldt, int kt, float* y, int ldy, int cols) {
  float* __restrict yr[R];
  const float* xr[R];
  for (int r = 0; r < R; ++r) {
    yr[r] = y + static_cast<int64_t>(r) * ldy;
    xr[r] = x + static_cast<int64_t>(r) * ldx;
  }
  int k = 0;
  for (; k + 4 <= kt; k += 4) {
    const float* __restrict w0 = tile + static_cast<int64_t>(k) * ldt;
    const float* __restrict w1 = w0 + ldt;
    const float* __restrict w2 = w1 + ldt;
    const float* __restrict w3 = w2 + ldt;
    for (int r = 0; r < R; ++r) {
      const float a0 = xr[r][k], a1 = xr[r][k + 1], a2 = xr[r][k + 2], a3 = xr[r][k + 3];
      float* __restrict yy = yr[r];
      for (int n = 0; n < cols; ++n) yy[n] += a0 * w0[n] + a1 * w1[n] + a2 * w2[n] + a3 * w3[n];
    }
  }
  for (; k < kt; ++k) {
    const float* __restrict w = tile + static_cast<int64_t>(k) * ldt;
    for (int r = 0; r < R; ++r) {
      const float a = xr[r][k];
      float* __restrict yy = yr[r];
      for (int n = 0; n < cols; ++n) yy[n] += a * w[n];
    }
  }
}

// y[rows][out] += x[rows][k0:k0+kt) * tile[kt][out].
NIBBLE_VECTOR_CLONES void multiply_tile(const float* x, int in, int rows, const float* tile, int kt, int out, float* y) {
  for (int c0 = 0; c0 < out; c0 += kColBlock) {
    const int cols = std::min(kColBlock, out - c0);
    int r = 0;
    for (; r + kRowBlock <= rows; r += kRowBlock)
      multiply_rows<kRowBlock>(x + static_cast<int64_t>(r) * in, in, tile + c0, out, kt,
                               y + static_cast<int64_t>(r) * out + c0, out, cols);
    for (; r < rows; ++r)
      multiply_rows<1>(x + static_cast<int64_t>(r) * in, in, tile + c0, out, kt, y + static_cast<int64_t>(r) * out + c0,
                       out, cols);
  }
}

}  // namespace

CpuLinear::CpuLinear(const LinearWeights& w, const std::string& what) : w_(w) {
  const int64_t in = w.in_features, out = w.out_features;
  NIBBLE_CHECK(in > 0 && out > 0, what + ": in_features and out_features must be positive");
  if (w.quantized) {
    const QuantConfig& q = w.quant;
    NIBBLE_CHECK(q.bits == 4 || q.bits == 8, what + ": GPTQ bits must be 4 or 8, got " + std::to_string(q.bits));
    const int pack = 32 / q.bits;
    NIBBLE_CHECK(in % pack == 0 && out % pack == 0,
                 what + ": GPTQ in/out features must be multiples of " + std::to_string(pack));
    NIBBLE_CHECK(q.group_size == -1 || q.group_size > 0, what + ": bad GPTQ group_size " + std::to_string(q.group_size));
    const int64_t groups = q.group_size == -1 ? 1 : (in + q.group_size - 1) / q.group_size;
    check_tensor(w.qweight, DType::I32, {in / pack, out}, what);
    check_tensor(w.scales, DType::F16, {groups, out}, what);
    check_tensor(w.qzeros, DType::I32, {groups, out / pack}, what);
    if (w.g_idx.present()) {
      check_tensor(w.g_idx, DType::I32, {in}, what);
      const auto* g = static_cast<const int32_t*>(w.g_idx.data);
      for (int64_t k = 0; k < in; ++k)
        NIBBLE_CHECK(g[k] >= 0 && g[k] < groups, what + ": " + w.g_idx.name + "[" + std::to_string(k) + "] = " +
                                                     std::to_string(g[k]) + " is not a group index");
    }
    gptq_.emplace(w);
  } else {
    check_dense(w.weight, {out, in}, what);
  }
  if (w.bias.present()) bias_ = dense_vector(w.bias, out, what + " bias");
}

void CpuLinear::dense_row(int n, float* buffer, const float*& row) const {
  const int in = w_.in_features;
  const size_t offset = static_cast<size_t>(n) * in;
  switch (w_.weight.dtype) {
    case DType::F32:
      row = static_cast<const float*>(w_.weight.data) + offset;
      return;
    case DType::F16:
      fp16_to_float_row(static_cast<const uint16_t*>(w_.weight.data) + offset, buffer, in);
      break;
    default: {
      const auto* src = static_cast<const uint16_t*>(w_.weight.data) + offset;
      for (int k = 0; k < in; ++k) buffer[k] = bf16_to_float(src[k]);
      break;
    }
  }
  row = buffer;
}

void CpuLinear::forward(const float* x, int rows, float* y, ThreadPool& pool) const {
  if (rows == 0) return;
  if (gptq_)
    forward_gptq(x, rows, y, pool);
  else
    forward_dense(x, rows, y, pool);
}

// Dense weights are stored [out][in]: each output column is a dot product with
// one weight row, converted to fp32 once per step and used by every token.
void CpuLinear::forward_dense(const float* x, int rows, float* y, ThreadPool& pool) const {
  const int in = w_.in_features, out = w_.out_features;
  pool.parallel_for(out, [&](size_t n0, size_t n1) {
    std::vector<float> buffer(in);
    for (size_t n = n0; n < n1; ++n) {
      const float* w;
      dense_row(static_cast<int>(n), buffer.data(), w);
      const float b = bias_.empty() ? 0.0f : bias_[n];
      for (int r = 0; r < rows; ++r) y[static_cast<size_t>(r) * out + n] = dot(x + static_cast<size_t>(r) * in, w, in) + b;
    }
  });
}

void CpuLinear::forward_gptq(const float* x, int rows, float* y, ThreadPool& pool) const {
  const int in = w_.in_features, out = w_.out_features;
  const int64_t y_size = static_cast<int64_t>(rows) * out;
  // With act-order the prepared weight's rows are permuted: gather x to match.
  std::vector<float> gathered;
  if (!gptq_->perm().empty()) {
    const auto& perm = gptq_->perm();
    gathered.resize(static_cast<size_t>(rows) * in);
    for (int r = 0; r < rows; ++r)
      for (int k = 0; k < in; ++k) gathered[static_cast<size_t>(r) * in + k] = x[static_cast<size_t>(r) * in + perm[k]];
    x = gathered.data();
  }
  const int units = (in + kSplitRows - 1) / kSplitRows;
  const int parts = static_cast<int>(std::min<size_t>(pool.size(), units));
  const int tile_rows = rows <= kRowBlock ? kSmallTileRows : kTileRows;
  // Part p owns input rows [p * units / parts, (p + 1) * units / parts) *
  // kSplitRows and sums into its own accumulator (part 0 straight into y); the
  // parts are added at the end.
  std::vector<std::vector<float>> partial(parts - 1);
  pool.parallel_for(parts, [&](size_t begin, size_t end) {
    std::vector<float> tile(static_cast<size_t>(tile_rows) * out);
    for (size_t p = begin; p < end; ++p) {
      float* acc = y;
      if (p > 0) {
        partial[p - 1].assign(y_size, 0.0f);
        acc = partial[p - 1].data();
      } else {
        std::fill(y, y + y_size, 0.0f);
      }
      const int k_begin = static_cast<int>(p * units / parts) * kSplitRows;
      const int k_end = std::min(in, static_cast<int>((p + 1) * units / parts) * kSplitRows);
      for (int k0 = k_begin; k0 < k_end; k0 += tile_rows) {
        const int k1 = std::min(k_end, k0 + tile_rows);
        gptq_->dequantize_rows(k0, k1, tile.data());
        multiply_tile(x + k0, in, rows, tile.data(), k1 - k0, out, acc);
      }
    }
  });
  // Sum the parts and add the bias, split over rows.
  pool.parallel_for(rows, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      float* yr = y + r * out;
      for (const auto& part : partial) {
        const float* pr = part.data() + r * out;
        for (int n = 0; n < out; ++n) yr[n] += pr[n];
      }
      if (!bias_.empty())
        for (int n = 0; n < out; ++n) yr[n] += bias_[n];
    }
  });
}

}  // namespace nibble
