#pragma once
// The tensor-core GPTQ GEMM (internal header; host API in gptq_gemm.h, plan in
// gptq_mma_plan.h, kernels in gptq_mma.cu and gptq_mma_wide.cu).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace nibble::kernels::detail {

struct MmaParams {
  const uint32_t* qweight;  // [K / 8, N], 4-bit kernel layout
  const __half* scales;     // [groups, N]
  const __half* zeros;      // [groups, N], -(1024 + zero)
  const int32_t* perm;      // [K] or null
  const __half* x;          // [M, K]
  __half* y;                // [M, N]
  const __half* bias;       // [N] or null
  int M, K, N;
  int group_rows, groups;
  int rows_per_split;  // multiple of kMmaSplitRows
  int splits;
  int x_vec;           // 1: x rows are 16-byte aligned and not permuted (16-byte loads; else gathered)
  float* partial;      // [M, N] fp32 accumulator when splits > 1 (zero between calls)
  unsigned* counters;  // [mchunks * ntiles] when splits > 1
  float* accumulate;   // add x W (+ bias) into this fp32 [M, N] instead of writing y (not the wide kernel)
  int cluster;         // Hopper kernel: 1 when a tile's splits are one cluster (launched as such)
};

// m_tile 8, 16, 32 or 64; grid (mchunks, ntiles, splits); programmatic: with
// programmatic dependent launch (the prologue's weight loads overlap the end of
// the kernel before).
void launch_mma(const MmaParams& p, int m_tile, dim3 grid, bool programmatic, cudaStream_t stream);
// The Hopper kernel (gptq_wgmma.cu): m_tile 32 or 64 tokens per block,
// wgmma_smem_bytes(m_tile) of shared memory; x rows 16-byte aligned and not
// permuted (p.x_vec).
void launch_wgmma(const MmaParams& p, int m_tile, dim3 grid, bool programmatic, cudaStream_t stream);
// The wide kernel: m_tile 32 or 64 tokens per block, smem from the plan.
void launch_mma_wide(const MmaParams& p, int m_tile, dim3 grid, size_t smem, bool programmatic, cudaStream_t stream);

// out[m, r] = x[m, perm[r]] for m < M, r < K (K a multiple of 8, out 16-byte aligned):
// act-order activations gathered once so the GEMM copies them with cp.async.
void launch_gather_columns(const __half* x, const int32_t* perm, int M, int K, __half* out, cudaStream_t stream);

}  // namespace nibble::kernels::detail
