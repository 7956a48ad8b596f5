#pragma once
// The model's weights on the GPU: GPTQ linears in the kernel layout of
// kernels/gptq_gemm, dense tensors in fp16. Built from a loaded checkpoint or
// generated at random (--load-format dummy). The byte counts are known before
// anything is allocated, for the memory plan.
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "device_buffer.h"
#include "gptq_gemm/gptq_gemm.h"
#include "nibble/model/config.h"
#include "nibble/model/weights.h"

namespace nibble::cuda {

struct DeviceLinear {
  int in_features = 0;
  int out_features = 0;
  bool quantized = false;
  kernels::GptqDeviceWeights gptq;  // when quantized
  const __half* dense = nullptr;    // [out, in] fp16 when not quantized
  const __half* bias = nullptr;     // [out] or null
};

// Linears that read the same input are concatenated along their outputs at
// load when they share a format (dense, or GPTQ with the same bits, groups and
// act-order permutation): one product reads the normed hidden state once and
// its launch covers all of them (bench/NOTES.md, "fusing the projections").
struct DeviceLayer {
  const __half* input_norm = nullptr;
  const __half* post_attention_norm = nullptr;
  std::vector<DeviceLinear> qkv;      // {[q | k | v]} fused, or {q, k, v}
  DeviceLinear o_proj;
  std::vector<DeviceLinear> gate_up;  // {[gate | up]} fused, or {gate, up}
  DeviceLinear down_proj;
};

struct DeviceModel {
  ModelConfig config;
  const __half* embed_tokens = nullptr;  // [vocab, hidden]
  const __half* final_norm = nullptr;    // [hidden]
  const __half* lm_head = nullptr;       // [vocab, hidden]; the embeddings when tied
  std::vector<DeviceLayer> layers;
  std::vector<DeviceBuffer> storage;
  uint64_t bytes = 0;
};

// Checks that the weights match the config and the backend's limits; throws
// nibble::Error naming the tensor at fault.
void check_model_weights(const ModelWeights& weights);
void check_model_config(const ModelConfig& config);

uint64_t model_device_bytes(const ModelWeights& weights);
DeviceModel upload_model(const ModelWeights& weights, cudaStream_t stream);

// The quantization of dummy weights: the config's when 4- or 8-bit GPTQ, else 4-bit group 128.
QuantConfig dummy_quant(const ModelConfig& config);
uint64_t dummy_model_device_bytes(const ModelConfig& config);
DeviceModel make_dummy_model(const ModelConfig& config, uint64_t seed, cudaStream_t stream);

}  // namespace nibble::cuda
