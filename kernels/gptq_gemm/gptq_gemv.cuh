#pragma once
// The fused dequantize-and-multiply kernel of the small-M path (internal header).
//
// Block (mchunk, ntile, split) computes rows [m0, m0 + MT) of y over the
// 4 * blockDim.x columns of its tile from input rows [k_begin, k_begin + rows_per_split).
// Each thread owns 4 adjacent columns: one 16-byte load brings `pack` rows of all
// four, dequantized with the 0x6400 half trick ((1024 + q) + zeros = q - zero
// exactly, then * scale: one rounding), multiplied by x held in shared memory
// (gathered through perm for act-order). Products of 32 rows are summed in half2
// and then added into fp32 accumulators. With split > 1 each block writes fp32
// partials and the last block of a tile (a counter in the workspace) adds them
// in split order, so the result does not depend on block timing.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace nibble::kernels::detail {

inline constexpr int kChunkRows = 32;       // rows summed in half2 before an fp32 add
inline constexpr int kMaxMTile = 8;         // rows of x per block
inline constexpr int kCounterBytes = 16384;  // split-K tile counters at the start of the workspace
inline constexpr int kStageRows = 1024;     // rows of x staged in shared memory at a time

struct GemvParams {
  const uint32_t* qweight;
  const __half* scales;
  const __half* zeros;
  const int32_t* perm;
  const __half* x;
  __half* y;
  const __half* bias;
  int M, K, N;
  int group_rows;
  int rows_per_split;  // multiple of kChunkRows
  int splits;
  float* partial;      // [splits, M, N] when splits > 1
  unsigned* counters;  // [mchunks * ntiles] when splits > 1
};

// Launch shape chosen for one call (gptq_gemm.cu picks it; the benchmark may override it).
struct GemvConfig {
  int threads = 128;         // 32, 64 or 128; 4 columns each
  int rows_per_split = 0;    // 0: whole K
};

template <int BITS>
void launch_gemv(const GemvParams& p, int m_tile, dim3 grid, int threads, cudaStream_t stream);

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

template <int BITS, int MT>
__global__ void __launch_bounds__(128) gptq_gemv_kernel(GemvParams p) {
  constexpr int PACK = 32 / BITS;
  constexpr int WORDS = kChunkRows / PACK;
  constexpr uint32_t MASK = BITS == 4 ? 0x000F000Fu : 0x00FF00FFu;
  extern __shared__ __align__(16) __half xs[];  // [MT][stage_rows]
  __shared__ bool last_block;

  const int mchunk = blockIdx.x, ntile = blockIdx.y, split = blockIdx.z;
  const int m0 = mchunk * MT;
  const int rps = p.rows_per_split;
  const int k_begin = split * rps;
  const int rows = min(rps, p.K - k_begin);
  const int stage_rows = min(rps, kStageRows);

  const int n = (ntile * blockDim.x + threadIdx.x) * 4;
  float acc[MT][4];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[m][c] = 0.f;

  const size_t stride = static_cast<size_t>(p.N) / 4;  // uint4 per word row
  const uint4* wq = reinterpret_cast<const uint4*>(p.qweight) + static_cast<size_t>(k_begin / PACK) * stride + n / 4;
  int group = -1;
  __half2 s2[4], z2[4];
  for (int stage = 0; stage < rows; stage += stage_rows) {
    // x rows [stage, stage + stage_rows) of this split into shared memory, zero past the end.
    if (stage > 0) __syncthreads();
    for (int i = threadIdx.x; i < MT * stage_rows; i += blockDim.x) {
      const int m = i / stage_rows, r = stage + i - m * stage_rows;
      __half v = __float2half(0.f);
      if (m0 + m < p.M && r < rows) {
        const int k = p.perm ? p.perm[k_begin + r] : k_begin + r;
        v = p.x[static_cast<size_t>(m0 + m) * p.K + k];
      }
      xs[i] = v;
    }
    __syncthreads();
    if (n >= p.N) continue;
    const int stage_end = min(rows, stage + stage_rows);
    for (int r0 = stage; r0 < stage_end; r0 += kChunkRows) {
      uint4 q[WORDS];
#pragma unroll
      for (int u = 0; u < WORDS; ++u)
        q[u] = r0 + u * PACK < stage_end ? __ldg(wq + static_cast<size_t>(r0 / PACK + u) * stride) : make_uint4(0, 0, 0, 0);

      const int g = (k_begin + r0) / p.group_rows;
      if (g != group) {
        group = g;
        const uint2 sraw = __ldg(reinterpret_cast<const uint2*>(p.scales + static_cast<size_t>(g) * p.N + n));
        const uint2 zraw = __ldg(reinterpret_cast<const uint2*>(p.zeros + static_cast<size_t>(g) * p.N + n));
        const __half2 s01 = *reinterpret_cast<const __half2*>(&sraw.x), s23 = *reinterpret_cast<const __half2*>(&sraw.y);
        const __half2 z01 = *reinterpret_cast<const __half2*>(&zraw.x), z23 = *reinterpret_cast<const __half2*>(&zraw.y);
        s2[0] = __low2half2(s01), s2[1] = __high2half2(s01), s2[2] = __low2half2(s23), s2[3] = __high2half2(s23);
        z2[0] = __low2half2(z01), z2[1] = __high2half2(z01), z2[2] = __low2half2(z23), z2[3] = __high2half2(z23);
      }

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
          const __half* xr = xs + m * stage_rows + (r0 - stage) + u * PACK;
          if constexpr (PACK == 8) {
            const uint4 raw = *reinterpret_cast<const uint4*>(xr);
            xv[m][0] = *reinterpret_cast<const __half2*>(&raw.x);
            xv[m][1] = *reinterpret_cast<const __half2*>(&raw.y);
            xv[m][2] = *reinterpret_cast<const __half2*>(&raw.z);
            xv[m][3] = *reinterpret_cast<const __half2*>(&raw.w);
          } else {
            const uint2 raw = *reinterpret_cast<const uint2*>(xr);
            xv[m][0] = *reinterpret_cast<const __half2*>(&raw.x);
            xv[m][1] = *reinterpret_cast<const __half2*>(&raw.y);
          }
        }
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const uint32_t w = word_of(q[u], c);
#pragma unroll
          for (int j = 0; j < PACK / 2; ++j) {
            const uint32_t t = ((w >> (BITS * j)) & MASK) | 0x64006400u;
            const __half2 wv = __hmul2(__hadd2(*reinterpret_cast<const __half2*>(&t), z2[c]), s2[c]);
#pragma unroll
            for (int m = 0; m < MT; ++m) acc2[m][c] = __hfma2(wv, xv[m][j], acc2[m][c]);
          }
        }
      }
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const float2 f = __half22float2(acc2[m][c]);
          acc[m][c] += f.x + f.y;
        }
    }
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

  if (n < p.N) {
    float* part = p.partial + static_cast<size_t>(split) * p.M * p.N;
#pragma unroll
    for (int m = 0; m < MT; ++m)
      if (m0 + m < p.M)
        __stcg(reinterpret_cast<float4*>(part + static_cast<size_t>(m0 + m) * p.N + n),
               make_float4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]));
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
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    if (m0 + m >= p.M) continue;
    const float* col = p.partial + static_cast<size_t>(m0 + m) * p.N + n;
    const size_t split_stride = static_cast<size_t>(p.M) * p.N;
    float4 sum = b;
#pragma unroll 8
    for (int s = 0; s < p.splits; ++s) sum = add4(sum, __ldcg(reinterpret_cast<const float4*>(col + s * split_stride)));
    *reinterpret_cast<uint2*>(p.y + static_cast<size_t>(m0 + m) * p.N + n) = pack_half4(sum.x, sum.y, sum.z, sum.w);
  }
}

template <int BITS>
void launch_gemv(const GemvParams& p, int m_tile, dim3 grid, int threads, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(m_tile) * (p.rows_per_split < kStageRows ? p.rows_per_split : kStageRows) * sizeof(__half);
  switch (m_tile) {
    case 1: gptq_gemv_kernel<BITS, 1><<<grid, threads, smem, stream>>>(p); break;
    case 2: gptq_gemv_kernel<BITS, 2><<<grid, threads, smem, stream>>>(p); break;
    case 3: gptq_gemv_kernel<BITS, 3><<<grid, threads, smem, stream>>>(p); break;
    case 4: gptq_gemv_kernel<BITS, 4><<<grid, threads, smem, stream>>>(p); break;
    case 5: gptq_gemv_kernel<BITS, 5><<<grid, threads, smem, stream>>>(p); break;
    case 6: gptq_gemv_kernel<BITS, 6><<<grid, threads, smem, stream>>>(p); break;
    case 7: gptq_gemv_kernel<BITS, 7><<<grid, threads, smem, stream>>>(p); break;
    default: gptq_gemv_kernel<BITS, 8><<<grid, threads, smem, stream>>>(p); break;
  }
}

}  // namespace nibble::kernels::detail

namespace nibble::kernels::detail {
extern template void launch_gemv<4>(const GemvParams&, int, dim3, int, cudaStream_t);
extern template void launch_gemv<8>(const GemvParams&, int, dim3, int, cudaStream_t);
}  // namespace nibble::kernels::detail
