#pragma once
// The TMA-streaming small-M GPTQ kernel (internal header; host API in gptq_gemm.h).
//
// Why: the register-prefetch kernel (gptq_gemv.cuh) keeps only 64-128 bytes per
// thread in flight, and a decode-sized product is read in a handful of dependent
// round trips, so it reaches about half of the copy bandwidth (bench/NOTES.md).
// Here three blocks per SM stream their share of the weights through rings of
// shared-memory stages filled by the tensor memory accelerator (one 2D copy of
// 256 rows x 256 columns of qweight plus the matching scale and zero rows per
// stage, ~200 KB in flight per SM), independent of registers and occupancy.
//
// Work is split stream-K style: the weights are cut into units of 256 rows x 256
// columns, ordered column tile by column tile, and each block takes one contiguous
// run of units, so every SM reads the same number of bytes whatever the shape.
// A run that covers a whole column tile writes y directly; each warp adds its sums
// for a partial tile into the fp32 split-K accumulator as it leaves the tile (no
// barrier mid-run); at its end a block counts its units into the tile counters of
// its (at most two) partial tiles and the block completing a tile writes y (the
// same workspace protocol as the register kernel).
//
// Measured on an H200 (bench/NOTES.md, session 3) it is 10-20% slower than the
// register kernel on every Llama-3-8B shape, so gptq_gemm does not pick it; it stays
// as the benchmark's TMA baseline and the base for fusing work into its consumers.
// (Session 6: 6% faster alone on the 70B fused gate+up, but the 70B decode step
// did not gain when it took that product, with or without programmatic launch.)
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "gptq_gemm/gptq_gemm.h"

namespace nibble::kernels::detail {

inline constexpr int kStreamTileCols = 256;  // columns per unit (one TMA box row of 1 KB)
inline constexpr int kStreamUnitRows = 256;  // input rows per unit (32 qweight word rows)
// Above 2 rows the blocks' 72 registers spill and their rings no longer fit.
inline constexpr int kStreamMaxM = 2;

// Whether the streaming kernel can run this product: 4-bit weights, 1 <= M <= 2,
// a device of compute capability 9.0 or newer, tensor-map alignment (16-byte base
// addresses, N a multiple of 8), and a split-K workspace with room for M x N.
bool stream_gemv_usable(const GptqDeviceWeights& w, int64_t M, size_t splitk_bytes);

// Launches it (arguments already checked by gptq_gemm); blocks 0 means three per SM.
void launch_stream_gemv(const GptqDeviceWeights& w, const __half* x, int M, __half* y, const __half* bias,
                        void* splitk, int blocks, cudaStream_t stream);

}  // namespace nibble::kernels::detail
