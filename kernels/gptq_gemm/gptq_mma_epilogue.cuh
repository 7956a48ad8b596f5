#pragma once
// The end of a column tile (TILE_N wide) of the narrow tensor-core kernels (gptq_mma.cu,
// gptq_wgmma.cu): both hold their sums in the mma.sync accumulator layout, so
// one epilogue adds them into the fp32 rows (accumulate mode), writes y, or adds
// them into the split-K workspace and lets the tile's last split write y.
#include "gptq_gemm/gptq_mma.cuh"
#include "gptq_gemm/gptq_mma_device.cuh"
#include "gptq_gemm/gptq_mma_plan.h"

namespace nibble::kernels::detail {

// total[j][h][c] holds (column col + 2h + c / 2, token m0 + 8j + 2t + c % 2), so a
// lane's results for one token are 4 adjacent columns (one 8-byte store). Called
// by every thread of the block (the split-K finish synchronises it).
template <int NT, int TILE_N>
__device__ __forceinline__ void store_mma_tile(const MmaParams& p, const float (&total)[NT][2][4], int m0, int ntile,
                                               int split, int col, bool col_ok, int t, bool& last_block) {
  // store(row, sums) for each of the lane's tokens below M.
  auto each_row = [&](auto&& store) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int row = m0 + 8 * j + 2 * t + e;
        if (row >= p.M) continue;
        store(row, make_float4(total[j][0][e], total[j][0][2 + e], total[j][1][e], total[j][1][2 + e]));
      }
  };
  if (p.accumulate) {  // every split adds its sums; the first also the bias
    if (!col_ok) return;
    const float4 b = split == 0 ? mma::load_bias4(p.bias, col) : make_float4(0.f, 0.f, 0.f, 0.f);
    each_row([&](int row, float4 v) {
      mma::add_to_partial(p.accumulate + static_cast<size_t>(row) * p.N + col,
                          make_float4(v.x + b.x, v.y + b.y, v.z + b.z, v.w + b.w));
    });
    return;
  }
  if (p.splits == 1) {
    if (!col_ok) return;
    const float4 b = mma::load_bias4(p.bias, col);
    each_row([&](int row, float4 v) {
      *reinterpret_cast<uint2*>(p.y + static_cast<size_t>(row) * p.N + col) =
          mma::pack_half4(v.x + b.x, v.y + b.y, v.z + b.z, v.w + b.w);
    });
    return;
  }
  if (col_ok)
    each_row([&](int row, float4 v) { mma::add_to_partial(p.partial + static_cast<size_t>(row) * p.N + col, v); });
  mma::finish_split_tile(p.partial, p.counters, p.splits, p.y, p.bias, p.M, p.N, m0, 8 * NT, ntile * TILE_N, TILE_N,
                         last_block);
}

}  // namespace nibble::kernels::detail
