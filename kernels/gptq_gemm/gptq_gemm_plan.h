#pragma once
// The launch plan of the fused small-M kernel, exposed for tests and the benchmark.
#include <cstddef>
#include <cstdint>

#include "gptq_gemm/gptq_gemm.h"

namespace nibble::kernels {

struct GemvPlan {
  int m_tile = 1;          // rows of x per block (<= 8)
  int mchunks = 1;         // blocks along M
  int threads = 128;       // per block, 4 columns each
  int ntiles = 1;          // blocks along N
  int rows_per_split = 0;  // input rows per block along K (multiple of 32)
  int splits = 1;          // blocks along K
};

// Zero fields mean "choose": tile width in threads (32, 64 or 128), rows per
// split, target blocks per SM when splitting K (default: as many as fit, at most 8).
struct GemvOverride {
  int threads = 0;
  int rows_per_split = 0;
  int blocks_per_sm = 0;
  int pdl = 0;  // 1 / -1: with / without programmatic dependent launch; 0: as GptqWorkspace says
};

// resident_blocks_per_sm(m_tile, threads) says how many blocks fit on an SM.
GemvPlan plan_gemv(int64_t M, int64_t N, int64_t K, int sms, size_t splitk_bytes, const GemvOverride& override,
                   int (*resident_blocks_per_sm)(int bits, int m_tile, int threads), int bits);

// The plan gptq_gemm_fused uses on the current device.
GemvPlan plan_gemv_on_device(int64_t M, int64_t N, int64_t K, int bits, size_t splitk_bytes,
                             const GemvOverride& override);

// gptq_gemm_fused with a chosen plan (benchmark sweeps).
void gptq_gemm_fused_with(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                          const GptqWorkspace& ws, cudaStream_t stream, const GemvOverride& override);

// gptq_gemm_stream with a chosen grid (blocks 0: two per SM; benchmark sweeps).
void gptq_gemm_stream_with(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                           const GptqWorkspace& ws, cudaStream_t stream, int blocks);

int device_sm_count();

}  // namespace nibble::kernels
