#pragma once
// The launch plan of the tensor-core GPTQ GEMM (gptq_mma.cu up to 64 tokens a
// block, gptq_mma_wide.cu for large batches without cuBLAS), host logic exposed
// for the tests and the benchmark.
#include <cstddef>
#include <cstdint>

#include "gptq_gemm/gptq_gemm.h"

namespace nibble::kernels {

// The narrow kernel (gptq_mma.cu): 4 independent warps side by side along N, 32
// columns each; a warp walks its K range in 32-row halves, mma_depth() of them in
// flight; 8, 16, 32 or 64 tokens per block (1, 2, 4 or 8 MMA token tiles). From
// 16 tokens x comes from shared memory, staged 128 rows at a time (two buffers),
// so the registers go to weights in flight.
inline constexpr int kMmaThreads = 128;
inline constexpr int kMmaTileN = 128;     // columns per block
inline constexpr int kMmaSplitRows = 64;  // rows per split are a multiple of this
// Resident blocks per SM the kernel is built for (registers bound it; from 32
// tokens one accumulator set, see gptq_mma.cu, leaves room for 4 and 3).
constexpr int mma_blocks_per_sm(int m_tile) { return m_tile <= 32 ? 4 : 3; }
// Blocks per SM a K split aims to fill: at 32 tokens one fewer than fit, since
// the extra split's fp32 atomics cost more than the fourth block gives (H200:
// 8B fused gate+up at 32 rows 52 us in 224 blocks, 55 us split in 448; layers
// whose tiles alone exceed three per SM still run in one wave of four).
constexpr int mma_target_blocks_per_sm(int m_tile) { return m_tile == 32 ? 3 : mma_blocks_per_sm(m_tile); }
// 32-row halves in flight per warp (a register ring).
constexpr int mma_depth(int m_tile) { return m_tile == 8 ? 4 : m_tile == 16 ? 6 : m_tile == 32 ? 6 : 4; }
// x in shared memory (16 tokens and more): rows per staged chunk, and each token's
// row padded by 64 bytes so a warp's 16-byte fragment loads hit distinct banks.
inline constexpr int kMmaXChunkRows = 128;
inline constexpr int kMmaXStride = kMmaXChunkRows + 32;  // halves
constexpr int mma_x_smem_bytes(int m_tile) { return m_tile <= 8 ? 0 : 2 * m_tile * kMmaXStride * 2; }
// Most tokens the narrow kernel takes per block.
inline constexpr int64_t kMmaNarrowMMax = 64;

// The Hopper kernel (gptq_wgmma.cu, sm_90a): the narrow kernel's tiling with
// wgmma on 32 or 64 tokens, two warpgroups side by side (256 columns) sharing one
// copy of x. x comes through shared memory in 128-row chunks: a 3-stage ring of
// raw cp.async copies (rows padded by 16 bytes) and two wgmma operand buffers.
inline constexpr int64_t kMmaSyncMMax = 16;   // up to 16 tokens mma.sync beats the Hopper kernel
inline constexpr int kWgmmaTokens = 64;       // the narrow tiling's large token tile
inline constexpr int kWgmmaSmallTokens = 32;  // the small one
inline constexpr int kWgmmaLargeTokens = 128; // the tall tile (from 65 tokens where modelled faster)
inline constexpr int kWgmmaThreads = 256;
inline constexpr int kWgmmaTileN = 256;  // columns per block
inline constexpr int kWgmmaBlocksPerSm = 1;
inline constexpr int kWgmmaRawStages = 3;
// A tile's K splits run as one thread-block cluster: at most the portable size
// on the Hopper kernel, 16 (the non-portable size) on the 8- and 16-token
// mma.sync tiles, whose 3-4 blocks per SM hold their 11-16 splits.
inline constexpr int kWgmmaMaxClusterSplits = 8;
inline constexpr int kMmaMaxClusterSplits = 16;
inline constexpr int kWgmmaRawStride = kMmaXChunkRows + 8;  // halves
constexpr int wgmma_raw_bytes(int tokens) { return tokens * kWgmmaRawStride * 2; }
constexpr int wgmma_operand_bytes(int tokens) { return tokens * kMmaXChunkRows * 2; }
constexpr int wgmma_smem_bytes(int tokens) {
  return kWgmmaRawStages * wgmma_raw_bytes(tokens) + 2 * wgmma_operand_bytes(tokens);
}

// The wide kernel (gptq_mma_wide.cu): 8 warps side by side along N, 32 columns
// each, 32 or 64 tokens per block; the weights, their scales and zeros and the
// matching x tile stream through a multi-stage cp.async ring of 64-row stages.
inline constexpr int kMmaWideThreads = 256;
inline constexpr int kMmaWideTileN = 256;     // columns per block
inline constexpr int kMmaWideStageRows = 64;  // input rows per pipeline stage
inline constexpr int kMmaWideStages = 6;      // ring depth (stages in flight + 1)
inline constexpr int kMmaWideBlocksPerSm = 2;
// One stage: 8 word rows x 256 columns of qweight, the scales and zeros of the
// stage's two 32-row halves (2 x 2 x 256 fp16), then x [m_tile][64] fp16.
inline constexpr int kMmaWideStageWeightBytes = kMmaWideStageRows / 8 * kMmaWideTileN * 4;
inline constexpr int kMmaWideStageQuantBytes = kMmaWideStageWeightBytes + 2 * 2 * kMmaWideTileN * 2;
constexpr int mma_wide_stage_bytes(int m_tile) { return kMmaWideStageQuantBytes + m_tile * kMmaWideStageRows * 2; }

// Clusters the device runs at once, by cluster size (index 0 and 1 unused), of
// the Hopper kernel (H200: 66 of 2, 30 of 4, 15 of 8: 132 SMs, one block each)
// and of the narrow kernel's 8- and 16-token tiles. Zero: no clusters.
struct MmaClusterCapacity {
  int wgmma[kMmaMaxClusterSplits + 1] = {};
  int narrow8[kMmaMaxClusterSplits + 1] = {};
  int narrow16[kMmaMaxClusterSplits + 1] = {};
};

struct MmaPlan {
  bool wide = false;        // the wide kernel (else the narrow one)
  bool wgmma = false;       // the narrow tiling on the Hopper kernel (32- or 64-token tiles)
  int m_tile = 8;           // rows of x per block: 8, 16, 32 or 64 (narrow), 32 or 64 (wide)
  int mchunks = 1;          // blocks along M
  int ntiles = 1;           // blocks along N
  int rows_per_split = 0;   // input rows per block along K (multiple of kMmaSplitRows)
  int splits = 1;           // blocks along K
  bool cluster = false;     // the splits of a tile are a cluster and add their sums in it
  int blocks_per_sm = 1;    // resident blocks per SM the split count aims to fill
  size_t smem_bytes = 0;    // dynamic shared memory per block
};

// Zero fields mean "choose".
struct MmaOverride {
  int rows_per_split = 0;  // forced rows per split (rounded up to kMmaSplitRows)
  int blocks_target = 0;   // blocks to aim for when splitting K (default: one full wave)
  int kernel = 0;          // 1: the narrow kernel (mma.sync), 2: the wide one, 3: the Hopper one (32/64-token tiles),
                           // 4: the Hopper one with 128-token tiles for any M (prefill experiment)
  int reduce = 0;          // splits: 1: add them in a cluster where it fits, 2: in the workspace
};

// Splitting K needs the fp32 [M, N] accumulator and a counter per tile in the
// split-K workspace (gptq_splitk_workspace_bytes(M, N) bytes); without room the
// plan runs each tile over all of K. The splits of a tile of the Hopper kernel
// or of the narrow kernel's 8- and 16-token tiles add their sums inside a
// thread-block cluster instead when all the tiles' clusters run at once
// (clusters; a second wave of clusters costs more than the global atomics save:
// bench/NOTES.md, session 9), and without workspace the plan takes the most
// splits whose clusters do.
// wgmma_available: the device runs the Hopper kernel (wgmma_kernel_available())
// and the product's x reaches it as plain 16-byte rows; then it takes the 32-
// and 64-token tiles (17-128 tokens; up to 16 mma.sync is faster), or every M
// when forced (kernel 3).
MmaPlan plan_mma(int64_t M, int64_t N, int64_t K, int sms, size_t splitk_bytes, const MmaOverride& override,
                 bool wgmma_available = false, const MmaClusterCapacity& clusters = {});

// Whether this process's kernels include the Hopper kernel for the current
// device (compute capability 9.0 and a build with sm_90a code).
bool wgmma_kernel_available();
// How many clusters of cluster_size blocks of the Hopper kernel (m_tile tokens)
// the current device runs at once (0 when it cannot).
int wgmma_max_active_clusters(int m_tile, int cluster_size);
// The same for the narrow kernel's m_tile-token blocks (8 or 16).
int narrow_mma_max_active_clusters(int m_tile, int cluster_size);
// All of them for the current device, every size up to kMmaMaxClusterSplits
// (queried once per process).
const MmaClusterCapacity& mma_cluster_capacity();

// The plan's choice of kernel (H200, Llama-3-8B shapes, bench/NOTES.md session
// 6): the narrow kernel up to 128 tokens (it beat the wide one at every shape and
// every M from 16 to 128 once x came from shared memory), the wide one above.
bool mma_wide_preferred(int64_t M, int64_t N, int64_t K);

// A Hopper plan's modelled time in microseconds on an H200 (fitted, bench/NOTES.md
// session 9): how plan_mma picks the 64- or 128-token tile from 65 tokens.
double wgmma_modelled_us(const MmaPlan& plan, int64_t M, int64_t N, int sms);

// Whether gptq_gemm sends a product to the tensor-core kernels: 4-bit weights and
// a split-K workspace with room for M rows, for every M from 2 to kMmaNarrowMMax,
// from there to kGptqMmaMMax on the MLP-shaped layers, or on every layer where
// the Hopper kernel runs (mma_beats_cublas_above_64); always from 2 rows when the
// workspace has no cuBLAS handle or dequant scratch. One row always takes the
// fused kernel: since session 7's GEMV work it beats the tensor-core kernel on
// the small layers too (8B q/k/v: 8.0 against 8.8 µs, batch-1 step +2%).
// Measured crossovers: bench/NOTES.md, sessions 5, 6 and 10.
bool gptq_mma_preferred(const GptqDeviceWeights& w, int64_t M, const GptqWorkspace& ws);

// At 65-128 rows the narrow kernel beat dequantize + cuBLAS on the long, thin
// layers of at least 48 Mi weights (the MLP products of Llama-3-8B and 70B:
// 0.71-0.90 of the cuBLAS time) and lost on the squarer attention products
// (8B q/k/v and o, 70B q/k/v: 1.17-1.27); the 70B o product tied (H200). The
// Hopper kernel beats it on every Llama-3 product at 128 rows (0.52-0.88 of the
// cuBLAS time: bench/NOTES.md, session 8).
bool mma_beats_cublas_above_64(int64_t K, int64_t N, bool hopper_kernel = false);

// The narrow kernel adding x W (+ bias) into fp32 rows out [M, N] (16-byte
// aligned): every split adds its sums with atomics, so it needs no split-K
// workspace and no finishing pass. Takes 4-bit weights and 1 <= M <= kMmaNarrowMMax.
void gptq_gemm_mma_accumulate(const GptqDeviceWeights& w, const __half* x, int64_t M, float* out, const __half* bias,
                              const GptqWorkspace& ws, cudaStream_t stream);

// gptq_gemm_mma with a chosen plan (benchmark sweeps).
void gptq_gemm_mma_with(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                        const GptqWorkspace& ws, cudaStream_t stream, const MmaOverride& override);

}  // namespace nibble::kernels
