#include "dummy_gptq_layer.h"

#include <cuda_fp16.h>

#include "random_fill/random_fill.h"

namespace nibble::bench {

kernels::GptqDeviceWeights dummy_gptq_layer(DeviceBuffers& buffers, int64_t K, int64_t N, uint64_t seed,
                                            cudaStream_t stream) {
  kernels::GptqDeviceWeights w;
  w.K = K;
  w.N = N;
  w.bits = 4;
  w.group_rows = 128;
  w.groups = K / 128;
  const size_t words = static_cast<size_t>(K / 8) * N, per_group = static_cast<size_t>(w.groups) * N;
  auto* q = buffers.get<uint32_t>(words);
  kernels::fill_random_bits(q, words, 7 + seed, stream);
  auto* scales = buffers.get<__half>(per_group);
  kernels::fill_random_half(scales, per_group, 9 + seed, 0.001f, 0.01f, stream);
  auto* zeros = buffers.get<__half>(per_group);
  kernels::fill_random_half(zeros, per_group, 0, 0.0f, -1032.0f, stream);
  w.qweight = q;
  w.scales = scales;
  w.zeros = zeros;
  return w;
}

}  // namespace nibble::bench
