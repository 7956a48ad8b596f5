#include "gptq_dequant/gptq_dequant.h"

namespace nibble::kernels {
namespace {

// One thread per qweight word: `pack` consecutive input rows of one column.
__global__ void gptq_dequant_kernel(GptqDequantParams p, __half* __restrict__ w) {
  const int pack = 32 / p.bits;
  const uint32_t mask = (1u << p.bits) - 1u;
  const size_t words = static_cast<size_t>(p.in_features / pack) * p.out_features;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < words;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int n = static_cast<int>(idx % p.out_features);
    const int kw = static_cast<int>(idx / p.out_features);
    const uint32_t word = static_cast<uint32_t>(p.qweight[idx]);
    for (int j = 0; j < pack; ++j) {
      const int k = kw * pack + j;
      const int g = p.g_idx ? p.g_idx[k] : (p.group_size > 0 ? k / p.group_size : 0);
      const uint32_t zword = static_cast<uint32_t>(p.qzeros[static_cast<size_t>(g) * (p.out_features / pack) + n / pack]);
      const int zero = static_cast<int>((zword >> (p.bits * (n % pack))) & mask) + (p.zero_plus_one ? 1 : 0);
      const int q = static_cast<int>((word >> (p.bits * j)) & mask);
      const float scale = __half2float(p.scales[static_cast<size_t>(g) * p.out_features + n]);
      w[static_cast<size_t>(k) * p.out_features + n] = __float2half(static_cast<float>(q - zero) * scale);
    }
  }
}

}  // namespace

cudaError_t gptq_dequantize(const GptqDequantParams& p, __half* w, cudaStream_t stream) {
  if (p.bits != 4 && p.bits != 8) return cudaErrorInvalidValue;
  const int pack = 32 / p.bits;
  if (p.in_features % pack != 0 || p.out_features % pack != 0) return cudaErrorInvalidValue;
  const size_t words = static_cast<size_t>(p.in_features / pack) * p.out_features;
  if (words == 0) return cudaSuccess;
  const size_t blocks = (words + 255) / 256;
  gptq_dequant_kernel<<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), 256, 0, stream>>>(p, w);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
