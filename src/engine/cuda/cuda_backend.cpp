#include "nibble/engine/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <utility>

#include "activation/activation.h"
#include "attention/attention.h"
#include "cuda_check.h"
#include "device_model.h"
#include "embedding/embedding.h"
#include "gptq_gemm/gptq_gemm.h"
#include "kv_cache/kv_cache.h"
#include "lm_head/lm_head.h"
#include "memory_plan.h"
#include "nibble/engine/batch_check.h"
#include "nibble/engine/rope.h"
#include "norm/rmsnorm.h"
#include "sampling/argmax.h"
#include "sampling/sample_jobs_host.h"
#include "sampling/sampling.h"
#include "step_plan.h"
#include "workspace.h"

namespace nibble {
namespace {

using cuda::DeviceBuffer;
using cuda::DeviceLinear;
using cuda::DeviceModel;

double to_gib(uint64_t bytes) { return static_cast<double>(bytes) / (1ull << 30); }

// How the weights reach the GPU: their size first (for the plan), then the upload.
struct ModelSource {
  ModelConfig config;
  std::function<uint64_t()> device_bytes;
  std::function<DeviceModel(cudaStream_t)> build;
};

class CudaBackendImpl final : public CudaBackend {
 public:
  CudaBackendImpl(const ModelSource& source, const CudaBackendOptions& options);
  ~CudaBackendImpl() override;

  std::string name() const override { return "cuda"; }
  const ModelConfig& config() const override { return model_.config; }
  KvCacheShape kv_cache_shape() const override { return {report_.kv_blocks, block_size_}; }
  void forward(const Batch& batch, std::vector<float>& logits) override;
  std::vector<int32_t> forward_greedy(const Batch& batch) override;
  bool has_device_sampling() const override { return true; }
  std::vector<SampleResult> forward_sample(const Batch& batch, std::span<const SampleRow> rows) override;
  void set_cuda_graphs(bool enabled) override { graphs_enabled_ = enabled; }
  int captured_graphs() const override { return static_cast<int>(graphs_.size()); }
  const CudaMemoryReport& memory_report() const override { return report_; }

 private:
  // Uploads the step's metadata and runs the model up to the logits on the
  // device; returns the number of logits rows (the batch's, not the padding).
  int run_step(const Batch& batch);
  void upload(const cuda::StepPlan& plan);
  void enqueue_forward(int tokens, int work, int splits, int logits_rows, bool decode);
  void linear(const DeviceLinear& l, const __half* x, int rows, __half* y);
  void qkv_products(const cuda::DeviceLayer& layer, int tokens, kernels::RopeKvParams& rope);
  const __half* residual_product(const DeviceLinear& l, const __half* x, int rows);
  const __half* mlp_products(const cuda::DeviceLayer& layer, int tokens);
  int graph_bucket(int seqs) const;
  int decode_splits(int work, int max_keys) const;
  cudaGraphExec_t graph_for(int bucket, int splits);

  CudaBackendOptions options_;
  int block_size_ = 16;
  int num_sms_ = 0;
  int tile_tokens_ = 0;
  bool decode_fuses_rope_ = false;  // the decode attention kernel takes RoPE and the K/V write
  int max_model_len_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceModel model_;
  cuda::Workspace ws_;
  kernels::GptqWorkspace gptq_ws_;
  DeviceBuffer kv_storage_;
  std::vector<__half*> k_cache_, v_cache_;  // per layer
  CudaMemoryReport report_;
  bool graphs_enabled_ = true;
  std::vector<int> buckets_;
  std::map<std::pair<int, int>, cudaGraphExec_t> graphs_;  // (batch bucket, attention splits)
  std::unique_ptr<kernels::SampleJobBuilder> sample_jobs_;
  Sampler host_sampler_;  // samples the device does not take (see forward_sample)
};

CudaBackendImpl::CudaBackendImpl(const ModelSource& source, const CudaBackendOptions& options) : options_(options) {
  const ModelConfig& c = source.config;
  cuda::check_model_config(c);
  NIBBLE_CHECK(options.block_size > 0 && options.block_size <= 1024,
               "cuda backend: block_size must be in [1, 1024], got " + std::to_string(options.block_size));
  NIBBLE_CHECK(options.max_num_batched_tokens > 0 && options.max_num_seqs > 0,
               "cuda backend: max_num_batched_tokens and max_num_seqs must be positive");
  NIBBLE_CHECK(options.kv_cache_blocks >= 0, "cuda backend: kv_cache_blocks must not be negative");
  int devices = 0;
  NIBBLE_CHECK(cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0, "cuda backend: no CUDA device is available");
  NIBBLE_CHECK(options.device >= 0 && options.device < devices,
               "cuda backend: device " + std::to_string(options.device) + " does not exist (" +
                   std::to_string(devices) + " found)");
  CUDA_CHECK(cudaSetDevice(options.device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, options.device));
  num_sms_ = prop.multiProcessorCount;
  block_size_ = options.block_size;
  tile_tokens_ = kernels::attention_tile_tokens(c.head_dim, c.num_attention_heads / c.num_key_value_heads);
  kernels::PagedAttentionParams decode_shape;
  decode_shape.num_heads = c.num_attention_heads;
  decode_shape.num_kv_heads = c.num_key_value_heads;
  decode_shape.head_dim = c.head_dim;
  decode_shape.decode_only = true;
  decode_fuses_rope_ = kernels::paged_attention_fuses_rope(decode_shape);
  max_model_len_ = c.max_position_embeddings > 0 ? c.max_position_embeddings : 8192;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUBLAS_CHECK(cublasCreate(&cublas_));
  CUBLAS_CHECK(cublasSetStream(cublas_, stream_));

  // The plan: every size is known before the first large allocation.
  cuda::WorkspaceLimits limits;
  limits.max_tokens = options.max_num_batched_tokens;
  limits.max_seqs = options.max_num_seqs;
  limits.max_work = limits.max_tokens + limits.max_seqs;
  const int64_t blocks_per_seq = (max_model_len_ + block_size_ - 1) / block_size_;
  limits.max_kv_indices = static_cast<int>(std::min<int64_t>(blocks_per_seq * limits.max_seqs, 1 << 28));
  limits.split_capacity = std::max(1024, 16 * limits.max_seqs);
  // Widest products: the fused [gate | up] and [q | k | v] (device_model.h).
  const int64_t qkv_n = int64_t{c.num_attention_heads + 2 * c.num_key_value_heads} * c.head_dim;
  const int64_t max_n = std::max<int64_t>({int64_t{2} * c.intermediate_size, c.hidden_size, qkv_n});
  // Split-K room for every batch the fused and tensor-core kernels take (gptq_gemm.h).
  const int64_t splitk_rows = std::max<int64_t>(kernels::kGptqSmallMMax,
                                                std::min<int64_t>(options.max_num_seqs, kernels::kGptqMmaMMax));
  limits.gptq_splitk_bytes = kernels::gptq_splitk_workspace_bytes(splitk_rows, max_n);
  const int64_t max_k = std::max<int64_t>(c.intermediate_size, int64_t{c.num_attention_heads} * c.head_dim);
  const uint64_t largest_kn = static_cast<uint64_t>(c.hidden_size) * max_n * 2;
  limits.gptq_dequant_bytes = static_cast<size_t>(
      std::max<uint64_t>(std::min<uint64_t>(largest_kn, 256ull << 20), static_cast<uint64_t>(max_k) * 64 * 2));
  // Device sampling: one job per running sample; entries for bias, suppressed
  // ids and penalized ids (distinct prompt + output ids with a repetition
  // penalty), 2048 per sample on average. Beyond that a sample is drawn on the host.
  limits.max_sample_jobs = limits.max_seqs;
  limits.max_sample_entries = static_cast<size_t>(limits.max_seqs) * 2048;
  const uint64_t weight_bytes = source.device_bytes();
  const uint64_t activation_bytes = cuda::Workspace::bytes_needed(c, limits);
  const uint64_t kv_bytes_per_token = 2ull * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * 2;

  size_t free_mem = 0, total_mem = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_mem, &total_mem));
  cuda::MemoryPlanInput in;
  in.total_memory = total_mem;
  in.free_memory = free_mem;
  in.gpu_memory_utilization = options.gpu_memory_utilization;
  in.max_gpu_memory = options.max_gpu_memory;
  in.weights = weight_bytes;
  in.activations = activation_bytes;
  in.kv_bytes_per_block = kv_bytes_per_token * block_size_;
  in.requested_kv_blocks = options.kv_cache_blocks;
  const cuda::MemoryPlan plan = cuda::plan_memory(in);

  report_.device_name = prop.name;
  report_.total_memory = total_mem;
  report_.budget = plan.budget;
  report_.used_at_start = plan.used_at_start;
  report_.weights = weight_bytes;
  report_.activations = activation_bytes;
  report_.kv_cache = plan.kv_bytes;
  report_.kv_bytes_per_token = kv_bytes_per_token;
  report_.kv_blocks = plan.kv_blocks;
  report_.kv_tokens = plan.kv_blocks * block_size_;
  spdlog::info(
      "cuda backend: {} ({:.1f} GiB), budget {:.2f} GiB: weights {:.2f} GiB, activations {:.2f} GiB, KV cache "
      "{:.2f} GiB = {} blocks x {} = {} tokens",
      prop.name, to_gib(total_mem), to_gib(plan.budget), to_gib(weight_bytes), to_gib(activation_bytes),
      to_gib(plan.kv_bytes), plan.kv_blocks, block_size_, report_.kv_tokens);
  if (report_.kv_tokens < max_model_len_)
    spdlog::warn("cuda backend: the KV cache holds {} tokens, fewer than max_position_embeddings {}",
                 report_.kv_tokens, max_model_len_);

  model_ = source.build(stream_);
  NIBBLE_CHECK(model_.bytes <= weight_bytes, "cuda backend: the weights took " + std::to_string(model_.bytes) +
                                                  " bytes, more than the plan's " + std::to_string(weight_bytes));
  ws_.allocate(c, limits);
  kv_storage_ = DeviceBuffer(plan.kv_bytes);
  const size_t layer_elems = static_cast<size_t>(plan.kv_blocks) * c.num_key_value_heads * block_size_ * c.head_dim;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    k_cache_.push_back(kv_storage_.get<__half>() + (2 * static_cast<size_t>(l)) * layer_elems);
    v_cache_.push_back(kv_storage_.get<__half>() + (2 * static_cast<size_t>(l) + 1) * layer_elems);
  }
  const std::vector<float> inv_freq = rope_inv_freq(c);
  CUDA_CHECK(cudaMemcpy(ws_.inv_freq, inv_freq.data(), inv_freq.size() * sizeof(float), cudaMemcpyHostToDevice));
  CUBLAS_CHECK(cublasSetWorkspace(cublas_, ws_.cublas, limits.cublas_bytes));
  gptq_ws_.splitk = ws_.gptq_splitk;
  gptq_ws_.splitk_bytes = limits.gptq_splitk_bytes;
  gptq_ws_.dequant = ws_.gptq_dequant;
  gptq_ws_.dequant_bytes = limits.gptq_dequant_bytes;
  gptq_ws_.cublas = cublas_;

  graphs_enabled_ = options.cuda_graphs;
  const int max_graph = std::min({options.max_graph_batch_size > 0 ? options.max_graph_batch_size
                                                                   : std::min(options.max_num_seqs, 256),
                                  options.max_num_seqs, options.max_num_batched_tokens});
  for (int b : {1, 2, 4, 8})
    if (b <= max_graph) buckets_.push_back(b);
  for (int b = 16; b <= max_graph; b += 8) buckets_.push_back(b);
  if (max_graph > 0 && (buckets_.empty() || buckets_.back() < max_graph)) buckets_.push_back(max_graph);
  sample_jobs_ = std::make_unique<kernels::SampleJobBuilder>(c.vocab_size);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

CudaBackendImpl::~CudaBackendImpl() {
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackendImpl::linear(const DeviceLinear& l, const __half* x, int rows, __half* y) {
  if (l.quantized) {
    kernels::gptq_gemm(l.gptq, x, rows, y, l.bias, gptq_ws_, stream_);
    return;
  }
  CUBLAS_CHECK(kernels::dense_linear(cublas_, x, l.dense, y, rows, l.in_features, l.out_features));
  if (l.bias) CUDA_CHECK(kernels::add_bias(y, l.bias, rows, l.out_features, stream_));
}

// The q/k/v products of `tokens` normed rows into ws_.qkv: one fused product
// ([tokens, q | k | v]) or three matrices one after another; points the RoPE
// step at the three.
void CudaBackendImpl::qkv_products(const cuda::DeviceLayer& layer, int tokens, kernels::RopeKvParams& rope) {
  const ModelConfig& c = model_.config;
  const size_t T = static_cast<size_t>(tokens);
  const int qd = c.num_attention_heads * c.head_dim, kvd = c.num_key_value_heads * c.head_dim;
  if (layer.qkv.size() == 1) {
    linear(layer.qkv[0], ws_.normed, tokens, ws_.qkv);
    rope.q = ws_.qkv, rope.k = ws_.qkv + qd, rope.v = ws_.qkv + qd + kvd;
    rope.ldq = rope.ldk = rope.ldv = qd + 2 * kvd;
    return;
  }
  __half* k = ws_.qkv + T * qd;
  __half* v = k + T * kvd;
  linear(layer.qkv[0], ws_.normed, tokens, ws_.qkv);
  linear(layer.qkv[1], ws_.normed, tokens, k);
  linear(layer.qkv[2], ws_.normed, tokens, v);
  rope.q = ws_.qkv, rope.k = k, rope.v = v;
  rope.ldq = qd, rope.ldk = rope.ldv = kvd;
}

// A product whose result joins the residual stream (o_proj): added straight into
// the fp32 residual when a GPTQ kernel's accumulate mode takes the batch (no fp16
// delta, no split-K arrival counting; returns null), else written to ws_.delta
// for the next add_rmsnorm (returned).
const __half* CudaBackendImpl::residual_product(const DeviceLinear& l, const __half* x, int rows) {
  if (l.quantized && kernels::gptq_gemm_accumulates(l.gptq, rows)) {
    kernels::gptq_gemm_accumulate(l.gptq, x, rows, ws_.residual, l.bias, gptq_ws_, stream_);
    return nullptr;
  }
  linear(l, x, rows, ws_.delta);
  return ws_.delta;
}

// The MLP of `tokens` normed rows: the gate and up products (one fused
// [gate | up] product or two), then down(silu(gate) * up), added to the residual
// like residual_product (returns ws_.delta, or null when already added). With a
// GPTQ down projection the activation goes into the down product (fused into its
// input staging for small batches); otherwise silu_and_mul writes ws_.act first.
const __half* CudaBackendImpl::mlp_products(const cuda::DeviceLayer& layer, int tokens) {
  const int I = model_.config.intermediate_size;
  const __half* gate = ws_.gate_up;
  const __half* up = ws_.gate_up + I;
  int ld = 2 * I;
  if (layer.gate_up.size() == 1) {
    linear(layer.gate_up[0], ws_.normed, tokens, ws_.gate_up);
  } else {
    __half* second = ws_.gate_up + static_cast<size_t>(tokens) * I;
    linear(layer.gate_up[0], ws_.normed, tokens, ws_.gate_up);
    linear(layer.gate_up[1], ws_.normed, tokens, second);
    up = second;
    ld = I;
  }
  const DeviceLinear& down = layer.down_proj;
  if (down.quantized && kernels::gptq_gemm_accumulates(down.gptq, tokens)) {
    kernels::gptq_gemm_silu_mul_accumulate(down.gptq, gate, up, ld, tokens, ws_.act, ws_.residual, down.bias,
                                           gptq_ws_, stream_);
    return nullptr;
  }
  if (down.quantized) {
    kernels::gptq_gemm_silu_mul(down.gptq, gate, up, ld, tokens, ws_.act, ws_.delta, down.bias, gptq_ws_, stream_);
    return ws_.delta;
  }
  CUDA_CHECK(kernels::silu_and_mul(gate, up, ld, ws_.act, tokens, I, stream_));
  linear(down, ws_.act, tokens, ws_.delta);
  return ws_.delta;
}

void CudaBackendImpl::enqueue_forward(int T, int W, int splits, int L, bool decode) {
  const ModelConfig& c = model_.config;
  const int H = c.hidden_size, D = c.head_dim;
  const int nq = c.num_attention_heads, nkv = c.num_key_value_heads;
  const float eps = static_cast<float>(c.rms_norm_eps);
  // Programmatic dependent launch for small steps (CudaBackendOptions): on an
  // H200 it speeds up batch 1 by 8% (70B: 5%) and batch 8 by 5.5% (70B: 2.3%).
  const bool pdl = options_.programmatic_launch && T <= options_.programmatic_launch_max_tokens;
  gptq_ws_.programmatic_launch = pdl;
  const cuda::StepMetadata& m = ws_.meta;
  CUDA_CHECK(kernels::embedding_lookup(model_.embed_tokens, m.token_ids, ws_.residual, T, H, stream_));

  kernels::PagedAttentionParams ap;
  ap.q = ws_.q;
  ap.out = ws_.attn;
  ap.query_start = m.query_start;
  ap.seq_lens = m.seq_lens;
  ap.kv_indptr = m.kv_indptr;
  ap.kv_indices = m.kv_indices;
  ap.work_seq = m.work_seq;
  ap.work_qoff = m.work_qoff;
  ap.num_work = W;
  ap.num_tokens = T;
  ap.num_heads = nq;
  ap.num_kv_heads = nkv;
  ap.head_dim = D;
  ap.block_size = block_size_;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(D));
  ap.window = c.sliding_window.value_or(0);  // every layer, like the CPU backend
  ap.num_splits = splits;
  ap.decode_only = decode;
  ap.programmatic_launch = decode && pdl;
  ap.split_out = ws_.split_out;
  ap.split_lse = ws_.split_lse;
  // Decode steps: RoPE and the K/V write inside the attention launch. Its splits
  // are merged by the combine pass, not in the kernel (split_counters): with
  // more than two splits the in-kernel merge measured slower (bench/NOTES.md).
  const bool fuse_rope = decode && decode_fuses_rope_;

  kernels::RopeKvParams rope;
  rope.positions = m.positions;
  rope.inv_freq = ws_.inv_freq;
  rope.slot_mapping = m.slot_mapping;
  rope.q_out = ws_.q;
  rope.tokens = T;
  rope.num_q_heads = nq;
  rope.num_kv_heads = nkv;
  rope.head_dim = D;
  rope.block_size = block_size_;

  const __half* delta = nullptr;  // a product's output the next norm adds to the residual first
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const cuda::DeviceLayer& layer = model_.layers[l];
    CUDA_CHECK(kernels::add_rmsnorm(delta, ws_.residual, layer.input_norm, ws_.normed, T, H, eps, stream_, pdl));
    rope.k_cache = k_cache_[l];
    rope.v_cache = v_cache_[l];
    qkv_products(layer, T, rope);
    ap.k_cache = k_cache_[l];
    ap.v_cache = v_cache_[l];
    if (fuse_rope)
      ap.rope = rope;
    else
      CUDA_CHECK(kernels::rope_and_write_kv(rope, stream_));
    CUDA_CHECK(kernels::paged_attention(ap, stream_));
    delta = residual_product(layer.o_proj, ws_.attn, T);
    CUDA_CHECK(
        kernels::add_rmsnorm(delta, ws_.residual, layer.post_attention_norm, ws_.normed, T, H, eps, stream_, pdl));
    delta = mlp_products(layer, T);
  }
  if (L == 0) return;
  CUDA_CHECK(kernels::add_rmsnorm(delta, ws_.residual, model_.final_norm, ws_.normed, T, H, eps, stream_, pdl));
  CUDA_CHECK(kernels::gather_rows(ws_.normed, m.logits_indices, ws_.gathered, L, H, stream_));
  CUBLAS_CHECK(kernels::lm_head_logits(cublas_, ws_.gathered, model_.lm_head, ws_.logits, L, H, c.vocab_size));
}

void CudaBackendImpl::upload(const cuda::StepPlan& p) {
  const cuda::StepMetadata& m = ws_.meta;
  auto copy = [&](int32_t* dst, const std::vector<int32_t>& src) {
    if (!src.empty())
      CUDA_CHECK(cudaMemcpyAsync(dst, src.data(), src.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  };
  copy(m.token_ids, p.token_ids);
  copy(m.positions, p.positions);
  copy(m.slot_mapping, p.slot_mapping);
  copy(m.query_start, p.query_start);
  copy(m.seq_lens, p.seq_lens);
  copy(m.kv_indptr, p.kv_indptr);
  copy(m.kv_indices, p.kv_indices);
  copy(m.work_seq, p.work_seq);
  copy(m.work_qoff, p.work_qoff);
  copy(m.logits_indices, p.logits_indices);
}

int CudaBackendImpl::graph_bucket(int seqs) const {
  for (int b : buckets_)
    if (b >= seqs) return b;
  return 0;
}

// Flash-decoding splits for a decode step whose longest context is max_keys,
// sized for that length rounded up to a power of two (from 128 keys with the
// fused decode kernel, which takes no split up to kDecodeNoSplitKeys; else
// from 512): short contexts get few splits, and a graph captured for a split
// count serves every context up to its bound.
int CudaBackendImpl::decode_splits(int work, int max_keys) const {
  int bound = decode_fuses_rope_ ? kernels::kDecodeKeysPerStep : 512;
  while (bound < max_keys && bound < max_model_len_) bound *= 2;
  const int keys = kernels::attention_item_keys(std::min(bound, std::max(max_model_len_, max_keys)),
                                                model_.config.sliding_window.value_or(0), 1);
  const int nkv = model_.config.num_key_value_heads;
  const int splits = decode_fuses_rope_ ? kernels::decode_attention_num_splits(work, nkv, keys, num_sms_)
                                        : kernels::attention_num_splits(work, nkv, keys, num_sms_);
  return std::max(1, std::min(splits, ws_.limits.split_capacity / std::max(work, 1)));
}

cudaGraphExec_t CudaBackendImpl::graph_for(int bucket, int splits) {
  auto it = graphs_.find({bucket, splits});
  if (it != graphs_.end()) return it->second;
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue_forward(bucket, bucket, splits, bucket, true);
  } catch (...) {
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    throw;
  }
  CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  CUDA_CHECK(err);
  graphs_.emplace(std::make_pair(bucket, splits), exec);
  return exec;
}

int CudaBackendImpl::run_step(const Batch& batch) {
  validate_batch(batch, model_.config.vocab_size, kv_cache_shape());
  cuda::check_step_capacity(batch, ws_.limits, tile_tokens_);
  const int L = static_cast<int>(batch.logits_indices.size());
  if (batch.num_tokens() == 0) return 0;
  const int bucket = graphs_enabled_ && cuda::is_decode_step(batch) ? graph_bucket(batch.num_seqs()) : 0;
  const int longest = *std::max_element(batch.seq_lens.begin(), batch.seq_lens.end());
  if (bucket > 0 && L <= bucket) {
    upload(cuda::make_step_plan(batch, block_size_, tile_tokens_, bucket));
    CUDA_CHECK(cudaGraphLaunch(graph_for(bucket, decode_splits(bucket, longest)), stream_));
    return L;
  }
  const cuda::StepPlan plan = cuda::make_step_plan(batch, block_size_, tile_tokens_, 0);
  upload(plan);
  int splits = 1;
  const bool decode = cuda::is_decode_step(batch);
  if (decode) {
    splits = decode_splits(plan.num_work, longest);
  } else {
    const int max_keys = kernels::attention_item_keys(longest, model_.config.sliding_window.value_or(0), tile_tokens_);
    splits = kernels::attention_num_splits(plan.num_work, model_.config.num_key_value_heads, max_keys, num_sms_);
    splits = std::max(1, std::min(splits, ws_.limits.split_capacity / std::max(plan.num_tokens, 1)));
  }
  enqueue_forward(plan.num_tokens, plan.num_work, splits, L, decode);
  return L;
}

void CudaBackendImpl::forward(const Batch& batch, std::vector<float>& logits) {
  const int L = run_step(batch);
  logits.resize(static_cast<size_t>(L) * model_.config.vocab_size);
  if (L > 0)
    CUDA_CHECK(cudaMemcpyAsync(logits.data(), ws_.logits, logits.size() * sizeof(float), cudaMemcpyDeviceToHost,
                               stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

std::vector<int32_t> CudaBackendImpl::forward_greedy(const Batch& batch) {
  const int L = run_step(batch);
  std::vector<int32_t> ids(L);
  if (L > 0) {
    CUDA_CHECK(kernels::argmax_rows(ws_.logits, ws_.sampled, L, model_.config.vocab_size, stream_));
    CUDA_CHECK(cudaMemcpyAsync(ids.data(), ws_.sampled, L * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return ids;
}

std::vector<SampleResult> CudaBackendImpl::forward_sample(const Batch& batch, std::span<const SampleRow> rows) {
  const int L = run_step(batch);
  const int vocab = model_.config.vocab_size;
  // Samples whose entries do not fit the planned buffers (or that ask for
  // more than 20 top_logprobs) are drawn on the host from their row.
  kernels::SampleJobBuilder& builder = *sample_jobs_;
  builder.clear();
  std::vector<size_t> on_device, on_host;
  for (size_t r = 0; r < rows.size(); ++r) {
    const int row = rows[r].logits_row;
    NIBBLE_CHECK(row >= 0 && row < L, "cuda backend: sample row " + std::to_string(row) + " is outside the step's " +
                                          std::to_string(L) + " logits rows");
    const bool device = static_cast<int>(on_device.size()) < ws_.limits.max_sample_jobs &&
                        builder.add(row, rows[r].input, ws_.limits.max_sample_entries);
    (device ? on_device : on_host).push_back(r);
  }
  const auto& jobs = builder.jobs();
  const auto& entries = builder.entries();
  std::vector<kernels::SampleOutput> outputs(jobs.size());
  if (!jobs.empty()) {
    CUDA_CHECK(cudaMemcpyAsync(ws_.sample_jobs, jobs.data(), jobs.size() * sizeof(jobs[0]), cudaMemcpyHostToDevice,
                               stream_));
    if (!entries.empty())
      CUDA_CHECK(cudaMemcpyAsync(ws_.sample_entries, entries.data(), entries.size() * sizeof(entries[0]),
                                 cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(kernels::sample_rows(ws_.logits, vocab, ws_.sample_jobs, static_cast<int>(jobs.size()),
                                    ws_.sample_entries, ws_.sample_out, stream_));
    CUDA_CHECK(cudaMemcpyAsync(outputs.data(), ws_.sample_out, outputs.size() * sizeof(outputs[0]),
                               cudaMemcpyDeviceToHost, stream_));
  }
  std::vector<float> host_logits(on_host.size() * static_cast<size_t>(vocab));
  for (size_t k = 0; k < on_host.size(); ++k)
    CUDA_CHECK(cudaMemcpyAsync(host_logits.data() + k * vocab,
                               ws_.logits + static_cast<size_t>(rows[on_host[k]].logits_row) * vocab,
                               static_cast<size_t>(vocab) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));

  std::vector<SampleResult> results(rows.size());
  for (size_t k = 0; k < on_device.size(); ++k) {
    const SampleRow& row = rows[on_device[k]];
    NIBBLE_CHECK(outputs[k].token >= 0 && outputs[k].token < vocab,
                 "cuda backend: device sampling returned token " + std::to_string(outputs[k].token));
    results[on_device[k]] = kernels::to_sample_result(outputs[k], row.input.params->logprobs);
  }
  for (size_t k = 0; k < on_host.size(); ++k) {
    SampleInput input = rows[on_host[k]].input;
    input.logits = std::span<const float>(host_logits).subspan(k * vocab, vocab);
    results[on_host[k]] = host_sampler_.sample(input);
  }
  return results;
}

}  // namespace

int cuda_device_count() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

bool cuda_device_available() { return cuda_device_count() > 0; }

std::unique_ptr<CudaBackend> make_cuda_backend(const LoadedModel& model, const CudaBackendOptions& options) {
  const ModelWeights& weights = model.weights();
  cuda::check_model_weights(weights);
  ModelSource source{weights.config, [&] { return cuda::model_device_bytes(weights); },
                     [&](cudaStream_t stream) { return cuda::upload_model(weights, stream); }};
  return std::make_unique<CudaBackendImpl>(source, options);
}

std::unique_ptr<CudaBackend> make_dummy_cuda_backend(const ModelConfig& config, const CudaBackendOptions& options,
                                                     uint64_t seed) {
  ModelSource source{config, [&] { return cuda::dummy_model_device_bytes(config); },
                     [&](cudaStream_t stream) { return cuda::make_dummy_model(config, seed, stream); }};
  return std::make_unique<CudaBackendImpl>(source, options);
}

}  // namespace nibble
