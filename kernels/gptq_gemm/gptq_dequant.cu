// Dequantization of a prepared GPTQ linear to fp16 (the large-M path feeds this
// to cuBLAS). One thread per (word row, 4 columns): a 16-byte load, `pack` rows
// of 4 columns written back in checkpoint row order (rows un-permuted).
#include <cuda_fp16.h>

#include "gptq_gemm/gptq_dequant.cuh"

namespace nibble::kernels::detail {
namespace {

template <int BITS>
__global__ void gptq_dequant_kernel(DequantParams p) {
  constexpr int PACK = 32 / BITS;
  constexpr uint32_t MASK = BITS == 4 ? 0x000F000Fu : 0x00FF00FFu;
  const int width = p.n_end - p.n_begin;
  const int quads = width / 4;
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= static_cast<int64_t>(quads) * (p.K / PACK)) return;
  const int word_row = static_cast<int>(index / quads);
  const int col = static_cast<int>(index % quads) * 4;
  const int n = p.n_begin + col;
  const uint4 q = __ldg(reinterpret_cast<const uint4*>(p.qweight + static_cast<size_t>(word_row) * p.N + n));
  const int g = word_row * PACK / p.group_rows;
  const uint2 sraw = __ldg(reinterpret_cast<const uint2*>(p.scales + static_cast<size_t>(g) * p.N + n));
  const uint2 zraw = __ldg(reinterpret_cast<const uint2*>(p.zeros + static_cast<size_t>(g) * p.N + n));
  const __half2 s01 = *reinterpret_cast<const __half2*>(&sraw.x), s23 = *reinterpret_cast<const __half2*>(&sraw.y);
  const __half2 z01 = *reinterpret_cast<const __half2*>(&zraw.x), z23 = *reinterpret_cast<const __half2*>(&zraw.y);
  const __half2 s[4] = {__low2half2(s01), __high2half2(s01), __low2half2(s23), __high2half2(s23)};
  const __half2 z[4] = {__low2half2(z01), __high2half2(z01), __low2half2(z23), __high2half2(z23)};
  const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int j = 0; j < PACK / 2; ++j) {
    __half2 v[4];  // column c: (row 2j, row 2j + 1)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const uint32_t t = ((words[c] >> (BITS * j)) & MASK) | 0x64006400u;
      v[c] = __hmul2(__hadd2(*reinterpret_cast<const __half2*>(&t), z[c]), s[c]);
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = word_row * PACK + 2 * j + half;
      const int dst = p.perm ? p.perm[row] : row;
      __half2 lo = half ? __highs2half2(v[0], v[1]) : __lows2half2(v[0], v[1]);
      __half2 hi = half ? __highs2half2(v[2], v[3]) : __lows2half2(v[2], v[3]);
      uint2 out = make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
      *reinterpret_cast<uint2*>(p.out + static_cast<size_t>(dst) * width + col) = out;
    }
  }
}

__global__ void broadcast_rows_kernel(const __half* row, int64_t M, int64_t N, __half* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < M * N) out[i] = row[i % N];
}

}  // namespace

void launch_dequant(const DequantParams& p, cudaStream_t stream) {
  const int pack = 32 / p.bits;
  const int64_t threads_total = static_cast<int64_t>((p.n_end - p.n_begin) / 4) * (p.K / pack);
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>((threads_total + threads - 1) / threads);
  if (blocks == 0) return;
  if (p.bits == 4)
    gptq_dequant_kernel<4><<<blocks, threads, 0, stream>>>(p);
  else
    gptq_dequant_kernel<8><<<blocks, threads, 0, stream>>>(p);
}

void launch_broadcast_rows(const __half* row, int64_t M, int64_t N, __half* out, cudaStream_t stream) {
  const int threads = 256;
  const int64_t total = M * N;
  if (total == 0) return;
  broadcast_rows_kernel<<<static_cast<unsigned>((total + threads - 1) / threads), threads, 0, stream>>>(row, M, N, out);
}

}  // namespace nibble::kernels::detail
