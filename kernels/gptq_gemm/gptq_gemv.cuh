#pragma once
// The fused dequantize-and-multiply kernel of the small-M path (internal header).
//
// Block (mchunk, ntile, split) computes rows [m0, m0 + MT) of y over the
// 4 * blockDim.x columns of its tile from input rows [k_begin, k_begin + rows_per_split).
// Each thread owns 4 adjacent columns: one 16-byte load brings `pack` rows of all
// four, turned into q - zero exactly with the 0x6400 half trick ((1024 + q) +
// zeros), multiplied by x held in shared memory (gathered through perm for
// act-order, each 32-row chunk scaled by a power of two into [1, 2)). The half2
// sums of 32 rows are then scaled (group scale, chunk factor) into fp32
// accumulators. With split > 1 each block adds its fp32 sums into an fp32
// accumulator with vector atomics and the last block of a tile (a counter in the
// workspace) writes fp16 y; the fp32 order of those additions varies from run to
// run (results may differ in the last fp16 bit). Measurements: bench/NOTES.md.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/device_utils.cuh"
#include "gptq_gemm/gptq_gemm.h"
#include "gptq_gemm/gptq_mma_device.cuh"

namespace nibble::kernels::detail {

inline constexpr int kChunkRows = 32;        // rows summed in half2 before an fp32 add
inline constexpr int kMaxMTile = 8;          // rows of x per block
inline constexpr int kCounterBytes = 16384;  // split-K tile counters at the start of the workspace
inline constexpr int kStageRows = 1024;      // rows of x staged in shared memory at a time

struct GemvParams {
  const uint32_t* qweight;
  const __half* scales;
  const __half* zeros;
  const int32_t* perm;
  const __half* x;
  const __half* up;  // non-null: the input is silu(x) * up (fp16, as silu_and_mul rounds it)
  int x_ld;          // row stride of x (and up)
  __half* y;
  const __half* bias;
  int M, K, N;
  int group_rows;
  int rows_per_split;  // multiple of kChunkRows
  int splits;
  float* partial;      // [M, N] fp32 accumulator when splits > 1 (zero between calls)
  unsigned* counters;  // [mchunks * ntiles] when splits > 1
  float* accumulate;   // non-null: y is not written; every block adds its sums into this fp32 [M, N]
};

// The operands every GPTQ product kernel's parameters carry (GemvParams here,
// MmaParams in gptq_mma.cuh): the weight arrays, x, y, bias and the shape.
template <typename Params>
void set_product_operands(Params& p, const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y,
                          const __half* bias) {
  p.qweight = w.qweight;
  p.scales = w.scales;
  p.zeros = w.zeros;
  p.perm = w.perm;
  p.x = x;
  p.y = y;
  p.bias = bias;
  p.M = static_cast<int>(M);
  p.K = static_cast<int>(w.K);
  p.N = static_cast<int>(w.N);
  p.group_rows = w.group_rows;
}

// pdl: launch with programmatic stream serialization (see the kernel's prologue;
// measured no gain, so gptq_gemm leaves it off).
template <int BITS>
void launch_gemv(const GemvParams& p, int m_tile, dim3 grid, int threads, bool pdl, cudaStream_t stream);

// Blocks of `threads` threads that fit on one SM at once (registers, shared memory).
template <int BITS>
int gemv_blocks_per_sm(int m_tile, int threads, size_t smem);

// x staged in shared memory (fp16) and one fp32 scale per 32-row chunk.
inline size_t gemv_smem_bytes(int m_tile, int rows_per_split) {
  const size_t rows = static_cast<size_t>(rows_per_split < kStageRows ? rows_per_split : kStageRows);
  return static_cast<size_t>(m_tile) * (rows * sizeof(__half) + rows / kChunkRows * sizeof(float));
}

__device__ __forceinline__ float4 add4(float4 a, float4 b) { return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w); }

__device__ __forceinline__ uint2 pack_half4(float a, float b, float c, float d) {
  __half2 lo = __floats2half2_rn(a, b), hi = __floats2half2_rn(c, d);
  return make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
}

__device__ __forceinline__ float4 bias4(const __half* bias, int n) {
  if (!bias) return make_float4(0.f, 0.f, 0.f, 0.f);
  uint2 raw = *reinterpret_cast<const uint2*>(bias + n);
  float2 a = __half22float2(*reinterpret_cast<__half2*>(&raw.x)), b = __half22float2(*reinterpret_cast<__half2*>(&raw.y));
  return make_float4(a.x, a.y, b.x, b.y);
}

__device__ __forceinline__ uint32_t word_of(const uint4& q, int c) {
  return c == 0 ? q.x : c == 1 ? q.y : c == 2 ? q.z : q.w;
}

// One group's scales and zeros for a thread's 4 columns, as the kernels use them:
// fp32 scales, and zeros as -(1024 + zero) (lo) and -(64 + zero) (hi), for 1024 + q
// and (1024 + 16 q) / 16.
struct GroupQuant {
  float scale[4];
  __half2 zero_lo[4], zero_hi[4];
};

__device__ __forceinline__ GroupQuant unpack_group(uint2 sraw, uint2 zraw) {
  const __half2 s01 = *reinterpret_cast<const __half2*>(&sraw.x), s23 = *reinterpret_cast<const __half2*>(&sraw.y);
  const __half2 z01 = *reinterpret_cast<const __half2*>(&zraw.x), z23 = *reinterpret_cast<const __half2*>(&zraw.y);
  GroupQuant g;
  g.scale[0] = __low2float(s01), g.scale[1] = __high2float(s01), g.scale[2] = __low2float(s23),
  g.scale[3] = __high2float(s23);
  g.zero_lo[0] = __low2half2(z01), g.zero_lo[1] = __high2half2(z01), g.zero_lo[2] = __low2half2(z23),
  g.zero_lo[3] = __high2half2(z23);
#pragma unroll
  for (int c = 0; c < 4; ++c) g.zero_hi[c] = __hadd2(g.zero_lo[c], __float2half2_rn(960.f));
  return g;
}

// q - zero, exact in half2, of the 8 rows in a 4-bit word (rows 2j, 2j + 1 in d[j]).
// Rows 0,1 and 4,5 sit in nibble 0 of each half (1024 + q); rows 2,3 and 6,7 in
// nibble 1 (1024 + 16 q, scaled back by the fma): 1 shift, 4 LOP3.
__device__ __forceinline__ void decode_4bit(uint32_t w, __half2 zero_lo, __half2 zero_hi, __half2 (&d)[4]) {
  const uint32_t w8 = w >> 8;
  const __half2 sixteenth = __float2half2_rn(0.0625f);
  d[0] = __hadd2(mma::as_h2(mma::and_or<0x000F000Fu, 0x64006400u>(w)), zero_lo);
  d[1] = __hfma2(mma::as_h2(mma::and_or<0x00F000F0u, 0x64006400u>(w)), sixteenth, zero_hi);
  d[2] = __hadd2(mma::as_h2(mma::and_or<0x000F000Fu, 0x64006400u>(w8)), zero_lo);
  d[3] = __hfma2(mma::as_h2(mma::and_or<0x00F000F0u, 0x64006400u>(w8)), sixteenth, zero_hi);
}

// The fused kernel's lean form of a group's scales and zeros (6 registers, not
// 12): columns in pairs (0, 1) and (2, 3) as loaded, each use picking its half.
// zero_lo is -(1024 + zero) for rows in nibble 0 of each byte; zero_hi is
// -(1024 + 16 zero) for rows in nibble 1, which decode as 16 (q - zero): the
// kernel stages their x divided by 16 (exact, a power of two), so the products
// are unchanged and the per-weight rescale of decode_4bit is gone.
struct PackedGroupQuant {
  __half2 scale[2], zero_lo[2], zero_hi[2];
};

__device__ __forceinline__ PackedGroupQuant unpack_group_packed(uint2 sraw, uint2 zraw) {
  PackedGroupQuant g;
  g.scale[0] = *reinterpret_cast<const __half2*>(&sraw.x), g.scale[1] = *reinterpret_cast<const __half2*>(&sraw.y);
  g.zero_lo[0] = *reinterpret_cast<const __half2*>(&zraw.x), g.zero_lo[1] = *reinterpret_cast<const __half2*>(&zraw.y);
  // 16 (-(1024 + zero)) + 15360 = -(1024 + 16 zero), exact in fp16.
#pragma unroll
  for (int i = 0; i < 2; ++i) g.zero_hi[i] = __hfma2(g.zero_lo[i], __float2half2_rn(16.f), __float2half2_rn(15360.f));
  return g;
}

// Column c's value of a packed pair, in both halves.
__device__ __forceinline__ __half2 column_of(const __half2 (&pair)[2], int c) {
  return c & 1 ? __high2half2(pair[c >> 1]) : __low2half2(pair[c >> 1]);
}

// decode_4bit for x staged with nibble-1 rows divided by 16: rows 0,1 / 4,5 as
// q - zero, rows 2,3 / 6,7 as 16 (q - zero), all exact: 1 shift, 4 LOP3, 4 HADD2
// (mma::and_or: written as C, ptxas splits (w & mask) | magic into two LOP3s
// when registers are short).
__device__ __forceinline__ void decode_4bit_x16(uint32_t w, __half2 zero_lo, __half2 zero_hi, __half2 (&d)[4]) {
  const uint32_t w8 = w >> 8;
  const uint32_t t0 = mma::and_or<0x000F000Fu, 0x64006400u>(w), t1 = mma::and_or<0x00F000F0u, 0x64006400u>(w);
  const uint32_t t2 = mma::and_or<0x000F000Fu, 0x64006400u>(w8), t3 = mma::and_or<0x00F000F0u, 0x64006400u>(w8);
  d[0] = __hadd2(zero_lo, mma::as_h2(t0));
  d[1] = __hadd2(zero_hi, mma::as_h2(t1));
  d[2] = __hadd2(zero_lo, mma::as_h2(t2));
  d[3] = __hadd2(zero_hi, mma::as_h2(t3));
}

// Eight staged x values (16-byte aligned) as four half2.
__device__ __forceinline__ void load_x8(const __half* xr, __half2 (&xv)[4]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(xr);
  xv[0] = *reinterpret_cast<const __half2*>(&raw.x);
  xv[1] = *reinterpret_cast<const __half2*>(&raw.y);
  xv[2] = *reinterpret_cast<const __half2*>(&raw.z);
  xv[3] = *reinterpret_cast<const __half2*>(&raw.w);
}

// Blocks per SM the register allocation must allow (without spilling): enough
// warps to keep loads in flight, as measured in bench/NOTES.md.
constexpr int gemv_min_blocks(int bits, int m_tile) {
  return bits == 4 ? (m_tile == 1 ? 7 : m_tile <= 2 ? 6 : m_tile <= 4 ? 4 : 3) : (m_tile == 1 ? 5 : m_tile <= 4 ? 4 : 3);
}

template <int BITS, int MT>
__global__ void __launch_bounds__(128, gemv_min_blocks(BITS, MT)) gptq_gemv_kernel(GemvParams p) {
  constexpr int PACK = 32 / BITS;
  constexpr int WORDS = kChunkRows / PACK;
  extern __shared__ __align__(16) unsigned char smem[];
  const int stage_rows = min(p.rows_per_split, kStageRows);
  __half* xs = reinterpret_cast<__half*>(smem);                              // [MT][stage_rows], scaled
  float* xscale = reinterpret_cast<float*>(xs + MT * stage_rows);          // [MT][stage_rows / 32]
  __shared__ bool last_block;

  const int mchunk = blockIdx.x, ntile = blockIdx.y, split = blockIdx.z;
  const int m0 = mchunk * MT;
  const int rps = p.rows_per_split;
  const int k_begin = split * rps;
  const int rows = min(rps, p.K - k_begin);

  const int n = (ntile * blockDim.x + threadIdx.x) * 4;
  float acc[MT][4];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[m][c] = 0.f;

  const bool active = n < p.N;
  const size_t row_bytes = static_cast<size_t>(p.N) * 4;  // one word row
  const char* wq = reinterpret_cast<const char*>(p.qweight + static_cast<size_t>(k_begin / PACK) * p.N + n);
  // Loads the words of the 32-row chunk at r0 (zeros past the split's end). A
  // whole chunk (all but possibly a split's last) takes plain loads: the bounds
  // tests and 64-bit index products of the general case cost more issue slots
  // than the arithmetic on the words.
  auto load_chunk = [&](uint4 (&q)[WORDS], int r0) {
    const char* at = wq + static_cast<unsigned>(r0 / PACK) * row_bytes;
    if (active && r0 + kChunkRows <= rows) {
#pragma unroll
      for (int u = 0; u < WORDS; ++u) q[u] = __ldg(reinterpret_cast<const uint4*>(at + u * row_bytes));
      return;
    }
#pragma unroll
    for (int u = 0; u < WORDS; ++u)
      q[u] = active && r0 + u * PACK < rows ? __ldg(reinterpret_cast<const uint4*>(at + u * row_bytes))
                                            : make_uint4(0, 0, 0, 0);
  };
  // The first two chunks' weights are in flight while x is staged; then each
  // buffer is refilled with the chunk after next as soon as its chunk is done
  // (two buffers used in turn, no copies).
  uint4 qa[WORDS], qb[WORDS];
  load_chunk(qa, 0);
  load_chunk(qb, kChunkRows);
  // The scales and zeros of the split's first group travel with the first chunks,
  // and each later group's are requested as soon as the one before is unpacked:
  // loaded on demand they were a dependent DRAM round trip at the head of every
  // block (the blocks of a one-row product are a single short wave).
  int pending_group = k_begin / p.group_rows;  // the group whose scales and zeros are in flight
  uint2 sraw_next{}, zraw_next{};
  auto request_group = [&](int g) {
    if (!active || g * p.group_rows >= p.K) return;
    sraw_next = __ldg(reinterpret_cast<const uint2*>(p.scales + static_cast<size_t>(g) * p.N + n));
    zraw_next = __ldg(reinterpret_cast<const uint2*>(p.zeros + static_cast<size_t>(g) * p.N + n));
  };
  request_group(pending_group);
  // Programmatic dependent launch: the weights are constant, so their first loads
  // may run while the kernel before us finishes; x, y and the workspace are only
  // touched after the wait.
  wait_for_previous_grid();
  // Group and x stage advance incrementally (chunks, groups and stages all start at
  // multiples of 32 rows): no integer division per chunk.
  int group_next = 0;  // split row where the next group starts
  int stage = 0, stage_next = 0;
  PackedGroupQuant gq;
  auto process_chunk = [&](const uint4 (&q)[WORDS], int r0) {
    if (r0 == stage_next) {
      // x rows [stage, stage + stage_rows) of this split into shared memory, zero past the end.
      stage = r0;
      stage_next = r0 + stage_rows;
      if (r0 > 0) __syncthreads();
      // Each warp stages one 32-row chunk of one row of x (stage_rows and the
      // block are multiples of 32) and scales it by a power of two so that its
      // largest |x| lies in [1, 2): the half2 sums of x * (q - zero) below then
      // cannot overflow, whatever the activations' range. The factor is undone
      // in fp32 (exactly) when the chunk's sums are added into the accumulators.
      for (int i = threadIdx.x; i < MT * stage_rows; i += blockDim.x) {
        const int m = i / stage_rows, r = stage + i - m * stage_rows;
        float v = 0.f;
        if (m0 + m < p.M && r < rows) {
          const int k = p.perm ? p.perm[k_begin + r] : k_begin + r;
          const size_t at = static_cast<size_t>(m0 + m) * p.x_ld + k;
          v = __half2float(p.x[at]);
          // The activation of a gate/up product, fused into the down product's staging.
          if (p.up) v = __half2float(silu_mul_one(p.x[at], p.up[at]));
        }
        const unsigned largest = __reduce_max_sync(0xffffffffu, __float_as_uint(fabsf(v)));
        const int e = largest ? static_cast<int>((largest >> 23) & 0xff) - 127 : 0;  // floor(log2(max |x|))
        // 4-bit: rows 2, 3, 6, 7 of each 8 also divided by 16 (decode_4bit_x16).
        const int shift = BITS == 4 && (r & 2) ? 4 : 0;
        xs[i] = __float2half_rn(v * __int_as_float((127 - e - shift) << 23));
        if ((threadIdx.x & 31) == 0) xscale[i / kChunkRows] = __int_as_float((127 + e) << 23);
      }
      __syncthreads();
    }
    if (!active) return;
    if (r0 >= group_next) {
      gq = unpack_group_packed(sraw_next, zraw_next);
      group_next = (pending_group + 1) * p.group_rows - k_begin;
      if (group_next < rows) request_group(++pending_group);
    }
    const unsigned offset = static_cast<unsigned>(r0 - stage);  // row within the x stage

    __half2 acc2[MT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc2[m][c] = __float2half2_rn(0.f);

#pragma unroll
    for (int u = 0; u < WORDS; ++u) {
      __half2 xv[MT][PACK / 2];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const __half* xr = xs + m * stage_rows + offset + u * PACK;
        if constexpr (PACK == 8) {
          load_x8(xr, xv[m]);
        } else {
          const uint2 raw = *reinterpret_cast<const uint2*>(xr);
          xv[m][0] = *reinterpret_cast<const __half2*>(&raw.x);
          xv[m][1] = *reinterpret_cast<const __half2*>(&raw.y);
        }
      }
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const uint32_t w = word_of(q[u], c);
        __half2 d[PACK / 2];  // q - zero, exact, rows (2j, 2j + 1)
        if constexpr (BITS == 4) {
          decode_4bit_x16(w, column_of(gq.zero_lo, c), column_of(gq.zero_hi, c), d);
        } else {
#pragma unroll
          for (int j = 0; j < PACK / 2; ++j) {
            d[j] = __hadd2(column_of(gq.zero_lo, c), mma::as_h2(mma::and_or<0x00FF00FFu, 0x64006400u>(w >> (8 * j))));
          }
        }
#pragma unroll
        for (int j = 0; j < PACK / 2; ++j)
#pragma unroll
          for (int m = 0; m < MT; ++m) acc2[m][c] = __hfma2(d[j], xv[m][j], acc2[m][c]);
      }
    }
    // Undo the chunk's power-of-two x scaling and apply the group scale in fp32.
    const unsigned stage_chunks = static_cast<unsigned>(stage_rows) / kChunkRows;
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      const float chunk_scale = xscale[m * stage_chunks + offset / kChunkRows];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const float2 f = __half22float2(acc2[m][c]);
        acc[m][c] = fmaf(f.x + f.y, __low2float(column_of(gq.scale, c)) * chunk_scale, acc[m][c]);
      }
    }
  };
  for (int r0 = 0; r0 < rows; r0 += 2 * kChunkRows) {
    process_chunk(qa, r0);
    if (r0 + kChunkRows >= rows) break;
    load_chunk(qa, r0 + 2 * kChunkRows);
    process_chunk(qb, r0 + kChunkRows);
    load_chunk(qb, r0 + 3 * kChunkRows);
  }

  if (p.accumulate) {
    // Sums straight into the caller's fp32 rows (e.g. the residual stream): fire-and-forget
    // vector atomics, no arrival counting; split 0 adds the bias.
    if (n >= p.N) return;
    const float4 b = split == 0 ? bias4(p.bias, n) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int m = 0; m < MT; ++m)
      if (m0 + m < p.M) {
        float* dst = p.accumulate + static_cast<size_t>(m0 + m) * p.N + n;
        const float4 v = add4(make_float4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]), b);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        atomicAdd(reinterpret_cast<float4*>(dst), v);
#else
        atomicAdd(dst, v.x), atomicAdd(dst + 1, v.y), atomicAdd(dst + 2, v.z), atomicAdd(dst + 3, v.w);
#endif
      }
    return;
  }

  if (p.splits == 1) {
    if (n < p.N) {
      const float4 b = bias4(p.bias, n);
#pragma unroll
      for (int m = 0; m < MT; ++m)
        if (m0 + m < p.M)
          *reinterpret_cast<uint2*>(p.y + static_cast<size_t>(m0 + m) * p.N + n) =
              pack_half4(acc[m][0] + b.x, acc[m][1] + b.y, acc[m][2] + b.z, acc[m][3] + b.w);
    }
    return;
  }

  // Split-K: add this block's sums into the fp32 accumulator [M, N] (vector
  // atomics at L2, fire-and-forget), make them visible, count arrivals; the last
  // block of the tile converts the totals to fp16 and zeroes the accumulator again.
  if (n < p.N) {
#pragma unroll
    for (int m = 0; m < MT; ++m)
      if (m0 + m < p.M) {
        float* dst = p.partial + static_cast<size_t>(m0 + m) * p.N + n;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        atomicAdd(reinterpret_cast<float4*>(dst), make_float4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]));
#else
#pragma unroll
        for (int c = 0; c < 4; ++c) atomicAdd(dst + c, acc[m][c]);
#endif
      }
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned* counter = p.counters + mchunk * gridDim.y + ntile;
    const unsigned arrived = atomicAdd(counter, 1u);
    last_block = arrived == static_cast<unsigned>(p.splits - 1);
    if (last_block) *counter = 0u;  // leave the workspace as we found it
  }
  __syncthreads();
  if (!last_block || n >= p.N) return;
  __threadfence();
  const float4 b = bias4(p.bias, n);
  // Every row's sum is read before any store (see mma::finish_split_tile).
  float4 sum[MT]{};
#pragma unroll
  for (int m = 0; m < MT; ++m)
    if (m0 + m < p.M) sum[m] = __ldcg(reinterpret_cast<const float4*>(p.partial + static_cast<size_t>(m0 + m) * p.N + n));
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m0 + m >= p.M) continue;
    __stcg(reinterpret_cast<float4*>(p.partial + static_cast<size_t>(m0 + m) * p.N + n), make_float4(0.f, 0.f, 0.f, 0.f));
    const float4 v = add4(sum[m], b);
    *reinterpret_cast<uint2*>(p.y + static_cast<size_t>(m0 + m) * p.N + n) = pack_half4(v.x, v.y, v.z, v.w);
  }
}

template <int BITS, int MT>
void launch_gemv_tile(const GemvParams& p, dim3 grid, int threads, bool pdl, cudaStream_t stream) {
  launch_maybe_programmatic(gptq_gemv_kernel<BITS, MT>, grid, dim3(threads), gemv_smem_bytes(MT, p.rows_per_split),
                            stream, pdl, p);
}

template <int BITS>
void launch_gemv(const GemvParams& p, int m_tile, dim3 grid, int threads, bool pdl, cudaStream_t stream) {
  switch (m_tile) {
    case 1: launch_gemv_tile<BITS, 1>(p, grid, threads, pdl, stream); break;
    case 2: launch_gemv_tile<BITS, 2>(p, grid, threads, pdl, stream); break;
    case 3: launch_gemv_tile<BITS, 3>(p, grid, threads, pdl, stream); break;
    case 4: launch_gemv_tile<BITS, 4>(p, grid, threads, pdl, stream); break;
    case 5: launch_gemv_tile<BITS, 5>(p, grid, threads, pdl, stream); break;
    case 6: launch_gemv_tile<BITS, 6>(p, grid, threads, pdl, stream); break;
    case 7: launch_gemv_tile<BITS, 7>(p, grid, threads, pdl, stream); break;
    default: launch_gemv_tile<BITS, 8>(p, grid, threads, pdl, stream); break;
  }
}

template <int BITS>
int gemv_blocks_per_sm(int m_tile, int threads, size_t smem) {
  int blocks = 0;
  cudaError_t status = cudaErrorInvalidValue;
  switch (m_tile) {
    case 1: status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gptq_gemv_kernel<BITS, 1>, threads, smem); break;
    case 2: status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gptq_gemv_kernel<BITS, 2>, threads, smem); break;
    case 3: status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gptq_gemv_kernel<BITS, 3>, threads, smem); break;
    case 4: status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gptq_gemv_kernel<BITS, 4>, threads, smem); break;
    case 5: status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gptq_gemv_kernel<BITS, 5>, threads, smem); break;
    case 6: status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gptq_gemv_kernel<BITS, 6>, threads, smem); break;
    case 7: status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gptq_gemv_kernel<BITS, 7>, threads, smem); break;
    default: status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gptq_gemv_kernel<BITS, 8>, threads, smem); break;
  }
  return status == cudaSuccess && blocks > 0 ? blocks : 1;
}

}  // namespace nibble::kernels::detail

namespace nibble::kernels::detail {
extern template void launch_gemv<4>(const GemvParams&, int, dim3, int, bool, cudaStream_t);
extern template void launch_gemv<8>(const GemvParams&, int, dim3, int, bool, cudaStream_t);
extern template int gemv_blocks_per_sm<4>(int, int, size_t);
extern template int gemv_blocks_per_sm<8>(int, int, size_t);
}  // namespace nibble::kernels::detail
