#pragma once
// GPTQ matrix product on the GPU: y[M, N] (fp16) = x[M, K] (fp16) * W[K, N] (+ bias),
// W a 4- or 8-bit GPTQ linear in the kernel layout of gptq_layout.h (converted once
// at load by gptq_prepare() on the host, then copied to the device as is).
//
//   M = 1 on every layer (decode, batch 1), 8-bit weights up to kGptqSmallMMax,
//     and 4-bit up to kGptqSmallMMax when the tensor-core kernels cannot split K:
//     one fused dequantize-and-multiply kernel that streams every weight byte from
//     DRAM once (16-byte coalesced loads, fp32 accumulation across rows), split
//     over K when N alone cannot fill the GPU; split partials are added into an
//     fp32 accumulator in the workspace and the last block of each tile writes y.
//   4-bit weights, M from 2 to 64, and to kGptqMmaMMax on
//     large layers: the tensor-core kernel (mma.sync m16n8k16, fp32 accumulation,
//     gptq_mma_plan.h) with the weights as the A operand, streamed from DRAM
//     straight into registers, up to 64 tokens per block. It splits K like the
//     fused kernel (the workspace then needs room for M rows:
//     gptq_splitk_workspace_bytes(M, N)).
//   larger M (prefill), and 8-bit weights above kGptqSmallMMax: the weight is
//     dequantized to an fp16 scratch, column chunk by column chunk, and multiplied
//     by cuBLAS (fp32 accumulation).
//
// Plain pointers and a stream; argument checks (shapes, null pointers) throw
// nibble::Error before anything is launched. Every call is asynchronous on `stream`.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "gptq_gemm/gptq_layout.h"

namespace nibble::kernels {

// Device pointers to one prepared linear (the four arrays of GptqPrepared, copied as is).
struct GptqDeviceWeights {
  int64_t K = 0;
  int64_t N = 0;
  int bits = 4;
  int group_rows = 0;
  int64_t groups = 0;
  const uint32_t* qweight = nullptr;  // [K / pack, N]
  const __half* scales = nullptr;     // [groups, N]
  const __half* zeros = nullptr;      // [groups, N], -(1024 + zero)
  const int32_t* perm = nullptr;      // [K] or null (no act-order)
};

// Scratch the calls need; the caller owns the memory (one workspace per stream:
// calls that share it must be ordered).
struct GptqWorkspace {
  // Split-K fp32 accumulator and tile counters. Must be zero-filled once after
  // allocation (cudaMemset); every call leaves it zero-filled again. Smaller
  // than gptq_splitk_workspace_bytes() for a call's M and N means no split-K
  // (correct, but slow when N alone cannot fill the GPU).
  void* splitk = nullptr;
  size_t splitk_bytes = 0;
  // fp16 dequantized-weight scratch of the large-M path (the tensor-core path
  // gathers act-order x into it when it holds M * K * 2 bytes); any size of at least
  // K * 64 * 2 bytes works (less means more, narrower column chunks); K * N * 2
  // bytes does it in one cuBLAS call.
  void* dequant = nullptr;
  size_t dequant_bytes = 0;
  cublasHandle_t cublas = nullptr;  // needed for the large-M path; its stream is set per call
  // The fused kernel launched with programmatic dependent launch: its launch and
  // first weight loads overlap the end of the kernel before it on the stream.
  bool programmatic_launch = false;
};

// Largest M the fused kernel serves at all; above it (8-bit weights, or no room
// for the tensor-core kernel's split-K) the dequantize + cuBLAS path runs.
inline constexpr int64_t kGptqSmallMMax = 8;

// Largest M the fused kernel's accumulate mode takes (gptq_gemm_accumulate), and
// with it the batches the engine launches programmatically.
inline constexpr int64_t kGptqGemvMMax = 3;

// Largest M that gptq_gemm sends to the tensor-core kernel (4-bit; the rule is
// gptq_mma_preferred in gptq_mma_plan.h, crossover measured in bench/NOTES.md).
// Size the split-K workspace for min(largest batch, kGptqMmaMMax) rows: with less
// room for a call's M, gptq_gemm keeps dequantize + cuBLAS (the kernel could not
// split K and would be several times slower).
inline constexpr int64_t kGptqMmaMMax = 128;
// On Hopper (the wgmma kernel, which splits K in clusters without the
// workspace) up to this M: at 129-256 rows it beat dequantize + cuBLAS on the
// Llama-3 products but the 70B q/k/v one at 256 (bench/NOTES.md, session 9).
inline constexpr int64_t kGptqHopperMMax = 256;

// Split-K workspace for every call with M <= max_m and N <= max_n: 16 KB of
// counters plus an fp32 [max_m, max_n] accumulator.
size_t gptq_splitk_workspace_bytes(int64_t max_m, int64_t max_n);

// The uploaded view of a prepared layer: pointers the caller copied the vectors to.
GptqDeviceWeights gptq_device_view(const GptqPrepared& host, const uint32_t* qweight, const __half* scales,
                                   const __half* zeros, const int32_t* perm);

// y = x W (+ bias). x fp16 [M, K] row-major, y fp16 [M, N] row-major, bias fp16 [N] or null.
void gptq_gemm(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
               const GptqWorkspace& ws, cudaStream_t stream);

// y = (silu(gate) * up) W (+ bias): the down projection of a gated MLP, gate and up
// fp16 [M, K] with row stride ld (e.g. the two halves of a fused gate|up product).
// When the fused kernel runs (see gptq_gemm above) it computes the activation while it stages
// its input (no separate pass, no act round trip; the same fp16 rounding as
// silu_and_mul); above, silu_and_mul writes act (fp16 [M, K]) and gptq_gemm runs.
void gptq_gemm_silu_mul(const GptqDeviceWeights& w, const __half* gate, const __half* up, int64_t ld, int64_t M,
                        __half* act, __half* y, const __half* bias, const GptqWorkspace& ws, cudaStream_t stream);

// out[M, N] (fp32, 16-byte aligned) += x W (+ bias), and the same with the input
// silu(gate) * up as in gptq_gemm_silu_mul, for the batches gptq_gemm_accumulates
// says it takes (throws otherwise): one row (and up to kGptqGemvMMax of 8-bit
// weights) on the fused kernel, 2-64 rows of 4-bit weights on the narrow
// tensor-core kernel (its SiLU form writes silu(gate) * up to act, fp16 [M, K],
// first). Every block adds its partial sums into out with atomics, so there is
// no fp16 y, no split-K arrival counting and no last-block pass. For a projection
// whose result goes straight into the fp32 residual stream. The order of the
// fp32 additions varies from run to run.
bool gptq_gemm_accumulates(const GptqDeviceWeights& w, int64_t M);
void gptq_gemm_accumulate(const GptqDeviceWeights& w, const __half* x, int64_t M, float* out, const __half* bias,
                          const GptqWorkspace& ws, cudaStream_t stream);
void gptq_gemm_silu_mul_accumulate(const GptqDeviceWeights& w, const __half* gate, const __half* up, int64_t ld,
                                   int64_t M, __half* act, float* out, const __half* bias, const GptqWorkspace& ws,
                                   cudaStream_t stream);

// The paths on their own (gptq_gemm picks one by M and bits); the benchmark times
// them all. gptq_gemm_mma takes 4-bit weights only. gptq_gemm_stream is an
// alternative to the fused kernel for M <= 2 on compute capability 9.0+ (weights
// streamed by the tensor memory accelerator, gptq_gemv_stream.cuh); measured slower,
// gptq_gemm never picks it. It takes what gptq_gemm_stream_usable accepts (throws otherwise).
void gptq_gemm_fused(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                     const GptqWorkspace& ws, cudaStream_t stream);
void gptq_gemm_stream(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                      const GptqWorkspace& ws, cudaStream_t stream);
void gptq_gemm_mma(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                   const GptqWorkspace& ws, cudaStream_t stream);
void gptq_gemm_dequant_cublas(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y,
                              const __half* bias, const GptqWorkspace& ws, cudaStream_t stream);

// Whether gptq_gemm_stream can run this product on the current device with this workspace.
bool gptq_gemm_stream_usable(const GptqDeviceWeights& w, int64_t M, const GptqWorkspace& ws);

// W as fp16 [K, n_end - n_begin] row-major (checkpoint row order) for columns
// [n_begin, n_end); out has row stride n_end - n_begin.
void gptq_dequantize(const GptqDeviceWeights& w, int64_t n_begin, int64_t n_end, __half* out, cudaStream_t stream);

}  // namespace nibble::kernels
