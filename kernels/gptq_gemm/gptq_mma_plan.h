#pragma once
// The launch plan of the tensor-core GPTQ GEMM (gptq_mma.cu), host logic exposed
// for the tests and the benchmark.
#include <cstddef>
#include <cstdint>

#include "gptq_gemm/gptq_gemm.h"

namespace nibble::kernels {

// Fixed shape of the kernel: 8 warps side by side along N, 32 columns each; the
// weights, their scales and zeros and the matching x tile stream through a
// multi-stage cp.async ring of 64-row stages.
inline constexpr int kMmaThreads = 256;
inline constexpr int kMmaTileN = 256;     // columns per block
inline constexpr int kMmaStageRows = 64;  // input rows per pipeline stage
inline constexpr int kMmaStages = 6;      // ring depth (stages in flight + 1)
// One stage: 8 word rows x 256 columns of qweight, the scales and zeros of the
// stage's two 32-row halves (2 x 2 x 256 fp16), then x [m_tile][64] fp16.
inline constexpr int kMmaStageWeightBytes = kMmaStageRows / 8 * kMmaTileN * 4;
inline constexpr int kMmaStageQuantBytes = kMmaStageWeightBytes + 2 * 2 * kMmaTileN * 2;
constexpr int mma_stage_bytes(int m_tile) { return kMmaStageQuantBytes + m_tile * kMmaStageRows * 2; }
// Resident blocks per SM the kernel is built for (registers; shared memory fits them).
constexpr int mma_blocks_per_sm(int m_tile) { return m_tile == 16 ? 3 : 2; }

struct MmaPlan {
  int m_tile = 16;          // rows of x per block: 16, 32 or 64
  int mchunks = 1;          // blocks along M
  int ntiles = 1;           // blocks along N
  int rows_per_split = 0;   // input rows per block along K (multiple of 64)
  int splits = 1;           // blocks along K
  size_t smem_bytes = 0;    // dynamic shared memory per block
};

// Zero fields mean "choose".
struct MmaOverride {
  int rows_per_split = 0;  // forced rows per split (rounded up to 64)
  int blocks_target = 0;   // blocks to aim for when splitting K (default: 2 per SM)
};

// Splitting K needs the fp32 [M, N] accumulator and a counter per tile in the
// split-K workspace (gptq_splitk_workspace_bytes(M, N) bytes); without room the
// plan runs each tile over all of K.
MmaPlan plan_mma(int64_t M, int64_t N, int64_t K, int sms, size_t splitk_bytes, const MmaOverride& override);

// Whether gptq_gemm sends a product to the tensor-core kernel: 4-bit weights,
// M > kGptqGemvMMax, and a split-K workspace with room for M rows up to
// kGptqSmallMMax (else the fused kernel); above, either M <= 32 or M <= kGptqMmaMMax
// on a big layer (K * N >= kMmaBigLayerWeights) with that room, and always when the
// workspace has no cuBLAS handle or dequant scratch. Measured crossovers: bench/NOTES.md.
inline constexpr int64_t kMmaAlwaysMMax = 32;
inline constexpr int64_t kMmaBigLayerWeights = int64_t{32} << 20;
bool gptq_mma_preferred(const GptqDeviceWeights& w, int64_t M, const GptqWorkspace& ws);

// gptq_gemm_mma with a chosen plan (benchmark sweeps).
void gptq_gemm_mma_with(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                        const GptqWorkspace& ws, cudaStream_t stream, const MmaOverride& override);

}  // namespace nibble::kernels
