#pragma once
// A random 4-bit GPTQ layer (group 128, no act-order) on the device, for the
// benchmarks' per-product timings.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "bench_common.h"
#include "gptq_gemm/gptq_gemm.h"

namespace nibble::bench {

// K x N weights, scales in [0.009, 0.011) and zeros -(1024 + 8) (the kernel
// layout's stored form), allocated from `buffers` and filled on `stream`;
// `seed` varies the weights and scales.
kernels::GptqDeviceWeights dummy_gptq_layer(DeviceBuffers& buffers, int64_t K, int64_t N, uint64_t seed,
                                            cudaStream_t stream);

}  // namespace nibble::bench
