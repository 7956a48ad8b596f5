#pragma once
// `--load-format dummy` on the host: random GPTQ weights at the shapes of a
// config.json, in checkpoint layout (AutoGPTQ qweight/qzeros/scales/g_idx), so
// the CPU backend loads them exactly as it loads a real checkpoint. Nothing is
// read from disk but the config. The CUDA backend generates its own on the GPU
// (make_dummy_cuda_backend); both follow the same recipe:
//  - GPTQ linears: the config's bits and group size when it is 4- or 8-bit
//    GPTQ, else 4-bit group 128; symmetric, sequential groups (no act-order),
//    checkpoint format gptq; random qweight bits, every zero at the midpoint
//    2^(bits-1), scales 1/(std(q) sqrt(in)) +-25% so activations stay near
//    unit scale through any number of layers;
//  - embeddings uniform in [-1, 1), norms 1 +- 0.1, q/k/v biases +-0.02, a
//    dense fp16 lm_head with weights of std 1/sqrt(hidden).
// The same config and seed give the same bytes on every machine.
#include <cstdint>
#include <filesystem>
#include <memory>

#include "nibble/model/config.h"
#include "nibble/model/loader.h"

namespace nibble {

struct DummyWeightsOptions {
  uint64_t seed = 0;
  // Refuse configs whose weights need more host memory than this; 0: half of
  // the machine's physical memory.
  uint64_t max_bytes = 0;
};

// The quantization dummy weights use for config (see above).
QuantConfig dummy_weights_quant(const ModelConfig& config);

// Host bytes the dummy weights of config take (what a decode step reads).
uint64_t dummy_weights_bytes(const ModelConfig& config);

// Half of the physical memory of this machine (the default max_bytes).
uint64_t default_dummy_weights_limit();

// The config (its quantization replaced by dummy_weights_quant) with random
// weights. dir() is config_path; generation_config() holds the config's
// bos/eos ids, or those of a generation_config.json beside config_path.
// Throws nibble::Error for shapes GPTQ cannot pack or a model over max_bytes.
std::unique_ptr<LoadedModel> make_dummy_weights(const ModelConfig& config, const std::filesystem::path& config_path,
                                                const DummyWeightsOptions& options = {});

}  // namespace nibble
