#pragma once
// The end of a column tile (TILE_N wide) of the narrow tensor-core kernels (gptq_mma.cu,
// gptq_wgmma.cu): both hold their sums in the mma.sync accumulator layout, so
// one epilogue adds them into the fp32 rows (accumulate mode), writes y, or adds
// them into the split-K workspace and lets the tile's last split write y.
#include <cooperative_groups.h>

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

// A staged tile: fp32 rows of TILE_N columns plus 16 bytes (the lanes of a
// quarter-warp write different banks).
template <int TILE_N>
inline constexpr int kMmaStageStride = TILE_N + 4;
template <int NT, int TILE_N>
constexpr int mma_stage_bytes() {
  return 8 * NT * kMmaStageStride<TILE_N> * static_cast<int>(sizeof(float));
}

// The tile's K splits are the blocks of one cluster (rank = split, at most
// MAX_SPLITS). Each stages its sums in its own shared memory; block r then adds
// slice r of the tile from every block's stage, adds the bias and writes y (or
// adds into p.accumulate: each element has one owner, so no atomics). Called by
// every thread once the block's shared memory is free.
template <int NT, int TILE_N, int THREADS, int MAX_SPLITS>
__device__ __forceinline__ void reduce_tile_in_cluster(const MmaParams& p, const float (&total)[NT][2][4],
                                                       float* stage, int m0, int ntile, int warp, int g, int t) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  constexpr int kStride = kMmaStageStride<TILE_N>, kQuadsPerRow = TILE_N / 4;
  cg::cluster_group cluster = cg::this_cluster();
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e)
      *reinterpret_cast<float4*>(stage + (8 * j + 2 * t + e) * kStride + warp * 32 + 4 * g) =
          make_float4(total[j][0][e], total[j][0][2 + e], total[j][1][e], total[j][1][2 + e]);
  cluster.sync();
  const int splits = static_cast<int>(cluster.num_blocks()), rank = static_cast<int>(cluster.block_rank());
  const int quads = 8 * NT * kQuadsPerRow, begin = quads * rank / splits, end = quads * (rank + 1) / splits;
  for (int q = begin + static_cast<int>(threadIdx.x); q < end; q += THREADS) {
    const int row = q / kQuadsPerRow, n = ntile * TILE_N + 4 * (q % kQuadsPerRow);
    if (m0 + row >= p.M || n >= p.N) continue;
    float* mine = stage + row * kStride + 4 * (q % kQuadsPerRow);
    float4 part[MAX_SPLITS];
#pragma unroll
    for (int r = 0; r < MAX_SPLITS; ++r)  // all loads first: one round trip
      part[r] = r < splits ? *cluster.map_shared_rank(reinterpret_cast<float4*>(mine), r) : make_float4(0, 0, 0, 0);
    float4 sum = mma::load_bias4(p.bias, n);
#pragma unroll
    for (int r = 0; r < MAX_SPLITS; ++r) {
      sum.x += part[r].x;
      sum.y += part[r].y;
      sum.z += part[r].z;
      sum.w += part[r].w;
    }
    const size_t at = static_cast<size_t>(m0 + row) * p.N + n;
    if (p.accumulate) {
      float4* out = reinterpret_cast<float4*>(p.accumulate + at);
      const float4 old = *out;
      *out = make_float4(old.x + sum.x, old.y + sum.y, old.z + sum.z, old.w + sum.w);
    } else {
      *reinterpret_cast<uint2*>(p.y + at) = mma::pack_half4(sum.x, sum.y, sum.z, sum.w);
    }
  }
  cluster.sync();  // no block leaves while another still reads its stage
#else
  (void)p, (void)total, (void)stage, (void)m0, (void)ntile, (void)warp, (void)g, (void)t;
  __trap();  // clusters need compute capability 9.0; the plan asks for none before it
#endif
}

// The end of a tile: the cluster's reduction when the plan made the tile's
// splits one cluster (CLUSTER_SPLITS > 0: the kernel may be launched so; stage
// is the block's shared memory, free once every thread is here), else
// store_mma_tile.
template <int NT, int TILE_N, int THREADS, int CLUSTER_SPLITS>
__device__ __forceinline__ void finish_mma_tile(const MmaParams& p, const float (&total)[NT][2][4], float* stage,
                                                int m0, int ntile, int split, int warp, int g, int t, int col,
                                                bool col_ok, bool& last_block) {
  if constexpr (CLUSTER_SPLITS > 0) {
    if (p.splits > 1 && p.cluster) {
      __syncthreads();  // no thread reads the block's x or MMA operands any more
      reduce_tile_in_cluster<NT, TILE_N, THREADS, CLUSTER_SPLITS>(p, total, stage, m0, ntile, warp, g, t);
      return;
    }
  }
  store_mma_tile<NT, TILE_N>(p, total, m0, ntile, split, col, col_ok, t, last_block);
}

}  // namespace nibble::kernels::detail
