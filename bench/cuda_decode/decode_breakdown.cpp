#include "decode_breakdown.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "activation/activation.h"
#include "attention/attention.h"
#include "bench_common.h"
#include "dummy_gptq_layer.h"
#include "gptq_gemm/gptq_gemm.h"
#include "kv_cache/kv_cache.h"
#include "lm_head/lm_head.h"
#include "norm/rmsnorm.h"
#include "random_fill/random_fill.h"

namespace nibble::bench {
namespace {

// Median milliseconds of fn (enqueued on the default stream) over reps.
double time_ms(const std::function<void()>& fn, int reps = 10) { return median_event_ms(nullptr, fn, reps); }

// Median milliseconds of one replay of a CUDA graph of fn(stream) over reps.
double graph_time_ms(const std::function<void(cudaStream_t)>& fn, int reps = 20) {
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  fn(stream);
  cudaStreamEndCapture(stream, &graph);
  double ms = -1.0;
  if (graph && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess) {
    ms = median_event_ms(stream, [&] { cudaGraphLaunch(exec, stream); }, reps);
    cudaGraphExecDestroy(exec);
  }
  if (graph) cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  return ms;
}

}  // namespace

void print_step_breakdown(const ModelConfig& c, int batch, int new_tokens, int context, double copy_gbs) {
  DeviceBuffers alloc;
  const int M = batch * new_tokens;  // rows of every matrix product
  const int L = c.num_hidden_layers, H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int nq = c.num_attention_heads, nkv = c.num_key_value_heads;
  struct Shape {
    const char* name;
    int K, N;
  };
  // The products as the backend runs them (q/k/v and gate/up fused, device_model.h).
  const std::vector<Shape> shapes = {{"qkv_proj", H, (nq + 2 * nkv) * D}, {"o_proj", nq * D, H},
                                     {"gate_up_proj", H, 2 * I}, {"down_proj", I, H}};
  cublasHandle_t cublas;
  cublasCreate(&cublas);
  kernels::GptqWorkspace ws;
  ws.splitk_bytes = kernels::gptq_splitk_workspace_bytes(kernels::kGptqMmaMMax, 2 * I);
  ws.splitk = alloc.get<char>(ws.splitk_bytes);
  cudaMemset(ws.splitk, 0, ws.splitk_bytes);
  ws.dequant_bytes = static_cast<size_t>(H) * 2 * I * 2;
  ws.dequant = alloc.get<char>(ws.dequant_bytes);
  ws.cublas = cublas;
  __half* x = alloc.get<__half>(static_cast<size_t>(M) * 2 * I);
  __half* y = alloc.get<__half>(static_cast<size_t>(M) * 2 * I);
  kernels::fill_random_half(x, static_cast<size_t>(M) * 2 * I, 1, 1.0f, 0.0f, nullptr);

  std::printf("\nstep breakdown: %d sequences x %d new tokens after %d cached (%d layers; dummy data; CUDA events, "
              "median of 10)\n",
              batch, new_tokens, context, L);
  std::printf("%-22s %10s %10s %10s\n", "op (all layers)", "ms", "GB", "frac copy");
  double total = 0;
  auto row = [&](const std::string& name, double ms, double bytes) {
    total += ms;
    std::printf("%-22s %10.3f %10.3f %10.3f\n", name.c_str(), ms, bytes / 1e9, bytes / (ms * 1e-3) / 1e9 / copy_gbs);
  };
  for (const Shape& s : shapes) {
    std::vector<kernels::GptqDeviceWeights> layers;
    const int groups = s.K / 128;
    for (int l = 0; l < L; ++l) layers.push_back(dummy_gptq_layer(alloc, s.K, s.N, l, nullptr));
    const double ms = time_ms([&] {
      for (int l = 0; l < L; ++l) kernels::gptq_gemm(layers[l], x, M, y, nullptr, ws, nullptr);
    });
    const double bytes = static_cast<double>(L) * (s.K / 2.0 * s.N + 4.0 * groups * s.N);
    const double tflops = 2.0 * L * M * static_cast<double>(s.K) * s.N / (ms * 1e-3) / 1e12;
    row(std::string("gptq ") + s.name, ms, bytes);
    if (M > 32) std::printf("%-22s %10s %10.1f TFLOP/s\n", "", "", tflops);
    // The step adds o_proj and down_proj straight into the fp32 residual at small batches.
    const std::string name = s.name;
    if ((name == "o_proj" || name == "down_proj") && kernels::gptq_gemm_accumulates(layers[0], M)) {
      float* sums = alloc.get<float>(static_cast<size_t>(M) * s.N);
      const double acc_ms = time_ms([&] {
        for (int l = 0; l < L; ++l) kernels::gptq_gemm_accumulate(layers[l], x, M, sums, nullptr, ws, nullptr);
      });
      std::printf("%-22s %10.3f %10.3f %10.3f  (into the fp32 residual: the step's path; not in the sum)\n",
                  ("  " + name + " +=").c_str(), acc_ms, bytes / 1e9, bytes / (acc_ms * 1e-3) / 1e9 / copy_gbs);
    }
  }
  // Attention over a paged cache: each sequence has `context` cached tokens and
  // `new_tokens` new ones (their K/V already written).
  const int bs = 16, len = context + new_tokens, blocks_per_seq = (len + bs - 1) / bs, blocks = batch * blocks_per_seq;
  const size_t cache_elems = static_cast<size_t>(blocks) * nkv * bs * D;
  __half* kc = alloc.get<__half>(cache_elems);
  __half* vc = alloc.get<__half>(cache_elems);
  kernels::fill_random_half(kc, cache_elems, 3, 1.0f, 0.0f, nullptr);
  kernels::fill_random_half(vc, cache_elems, 4, 1.0f, 0.0f, nullptr);
  std::vector<int32_t> qs(batch + 1), lens(batch, len), indptr(batch + 1), indices(blocks);
  for (int s = 0; s <= batch; ++s) qs[s] = s * new_tokens, indptr[s] = s * blocks_per_seq;
  for (int i = 0; i < blocks; ++i) indices[i] = i;
  const int group = nq / nkv;
  const auto work = kernels::plan_attention_work(qs, kernels::attention_tile_tokens(D, group));
  auto upload = [&](const std::vector<int32_t>& v) {
    int32_t* d = alloc.get<int32_t>(v.size());
    cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice);
    return d;
  };
  __half* q = alloc.get<__half>(static_cast<size_t>(M) * nq * D);
  kernels::fill_random_half(q, static_cast<size_t>(M) * nq * D, 5, 1.0f, 0.0f, nullptr);
  kernels::PagedAttentionParams p;
  p.q = q;
  p.k_cache = kc;
  p.v_cache = vc;
  p.out = alloc.get<__half>(static_cast<size_t>(M) * nq * D);
  p.query_start = upload(qs);
  p.seq_lens = upload(lens);
  p.kv_indptr = upload(indptr);
  p.kv_indices = upload(indices);
  p.work_seq = upload(work.seq);
  p.work_qoff = upload(work.qoff);
  p.num_work = static_cast<int>(work.seq.size());
  p.num_tokens = M;
  p.num_heads = nq;
  p.num_kv_heads = nkv;
  p.head_dim = D;
  p.block_size = bs;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  p.num_splits = new_tokens == 1 ? kernels::attention_num_splits(batch, nkv, c.max_position_embeddings, sms) : 1;
  p.split_out = alloc.get<float>(static_cast<size_t>(p.num_splits) * M * nq * D);
  p.split_lse = alloc.get<float>(static_cast<size_t>(p.num_splits) * M * nq * 2);
  const double kv_bytes = static_cast<double>(L) * 2.0 * batch * len * nkv * D * 2;
  const double attn_flops = 4.0 * L * batch * nq * D * (static_cast<double>(new_tokens) * context +
                                                          0.5 * new_tokens * (new_tokens + 1.0));
  struct Variant {
    const char* name;
    bool tensor_cores, decode_only;
  };
  for (const Variant& v : {Variant{"attn cuda-core", false, false}, Variant{"attn tensor-core", true, false},
                           Variant{"attn decode kernel", false, true}}) {
    if (v.decode_only && new_tokens != 1) continue;
    p.use_tensor_cores = v.tensor_cores;
    p.decode_only = v.decode_only;
    const double attn_ms = time_ms([&] {
      for (int l = 0; l < L; ++l) kernels::paged_attention(p, nullptr);
    });
    row(std::string(v.name) + " s" + std::to_string(p.num_splits), attn_ms, kv_bytes);
    if (new_tokens > 1) std::printf("%-22s %10s %10.1f TFLOP/s\n", "", "", attn_flops / (attn_ms * 1e-3) / 1e12);
  }
  // The decode step's attention part, all layers in one CUDA graph: as main ran
  // it before branch attn-latency (RoPE + K/V write, the decode kernel with the
  // split count for the context rounded up to a power of two of at least 512
  // keys, the combine pass), and with RoPE + K/V write fused into the decode
  // kernel at several split counts, merged by the combine pass (the backend's
  // way; its planned count marked *) or in the kernel (split_counters).
  std::vector<int32_t> pos(M, context), slots(M);
  for (int t = 0; t < M; ++t) slots[t] = (t / new_tokens) * blocks_per_seq * bs + context + t % new_tokens;
  int32_t* d_pos = upload(pos);
  int32_t* d_slots = upload(slots);
  std::vector<float> freqs(D / 2);
  for (int i = 0; i < D / 2; ++i) freqs[i] = static_cast<float>(std::pow(c.rope_theta, -2.0 * i / D));
  float* inv_freq = alloc.get<float>(D / 2);
  cudaMemcpy(inv_freq, freqs.data(), freqs.size() * sizeof(float), cudaMemcpyHostToDevice);
  const int width = (nq + 2 * nkv) * D;
  __half* qkv = alloc.get<__half>(static_cast<size_t>(M) * width);
  kernels::fill_random_half(qkv, static_cast<size_t>(M) * width, 11, 1.0f, 0.0f, nullptr);
  kernels::RopeKvParams rope;
  rope.q = qkv, rope.k = qkv + nq * D, rope.v = qkv + (nq + nkv) * D;
  rope.ldq = rope.ldk = rope.ldv = width;
  rope.positions = d_pos, rope.inv_freq = inv_freq, rope.slot_mapping = d_slots;
  rope.q_out = q, rope.k_cache = kc, rope.v_cache = vc;
  rope.tokens = M, rope.num_q_heads = nq, rope.num_kv_heads = nkv, rope.head_dim = D, rope.block_size = bs;
  if (new_tokens == 1) {
    int bound = 512;
    while (bound < len && bound < c.max_position_embeddings) bound *= 2;
    kernels::PagedAttentionParams before = p;
    before.decode_only = true;
    before.num_splits = kernels::attention_num_splits(batch, nkv, bound, sms);
    const double before_ms = graph_time_ms([&](cudaStream_t st) {
      for (int l = 0; l < L; ++l) {
        kernels::rope_and_write_kv(rope, st);
        kernels::paged_attention(before, st);
      }
    });
    auto per_layer = [&](const std::string& name, double ms) {
      row(name, ms, kv_bytes);
      total -= ms;  // alternatives of the attention row above, not extra time
      std::printf("%-22s %10s %10.2f us/layer\n", "", "", ms * 1e3 / L);
    };
    per_layer("graph rope+attn s" + std::to_string(before.num_splits) + (before.num_splits > 1 ? "+comb" : ""),
              before_ms);
    int32_t* counters = alloc.get<int32_t>(static_cast<size_t>(batch) * nkv);
    cudaMemset(counters, 0, static_cast<size_t>(batch) * nkv * 4);
    bound = kernels::kDecodeKeysPerStep;
    while (bound < len && bound < c.max_position_embeddings) bound *= 2;
    const int planned = kernels::decode_attention_num_splits(batch, nkv, bound, sms);
    std::vector<int> sweep = {1, 2, 4, 8, 16, planned};
    std::sort(sweep.begin(), sweep.end());
    sweep.erase(std::unique(sweep.begin(), sweep.end()), sweep.end());
    // Clusters (sm_90): the kernel's own choice unless `cluster` (1: none).
    const int auto_cluster = kernels::decode_attention_cluster(batch * nkv, sms);
    auto fused_ms = [&](int splits, bool merge_in_kernel, int cluster) {
      kernels::PagedAttentionParams fused = p;
      fused.decode_only = true;
      fused.num_splits = splits;
      fused.split_counters = merge_in_kernel ? counters : nullptr;
      fused.decode_cluster = cluster;
      fused.rope = rope;
      return graph_time_ms([&](cudaStream_t st) {
        for (int l = 0; l < L; ++l) kernels::paged_attention(fused, st);
      });
    };
    for (int splits : sweep) {
      if (splits > p.num_splits) continue;  // the split buffers' size
      for (bool merge_in_kernel : {false, true}) {  // the combine pass (the backend's), or split_counters
        if (splits == 1 && merge_in_kernel) continue;
        const double ms = fused_ms(splits, merge_in_kernel, merge_in_kernel ? 1 : 0);
        const std::string how = splits == 1 ? "" : merge_in_kernel ? "+merge" : "+comb";
        const int c_auto = kernels::decode_attention_cluster(batch * nkv, sms, splits);
        const std::string cl = merge_in_kernel || c_auto == 1 ? "" : " c" + std::to_string(c_auto);
        per_layer("graph fused s" + std::to_string(splits) + how + cl +
                      (splits == planned && !merge_in_kernel ? " *" : ""),
                  ms);
      }
    }
    // Cluster sizes at no split and at the planned split count (combine pass),
    // where the kernel picks clusters (they cost 1.7-5x at batch 32, session 4).
    std::vector<int> cluster_splits;
    if (auto_cluster > 1) cluster_splits.push_back(1);
    if (auto_cluster > 1 && planned > 1) cluster_splits.push_back(planned);
    for (int splits : cluster_splits) {
      if (splits > p.num_splits) continue;  // the split buffers' size
      for (int cluster : {1, 2, 4, 8, 16})
        per_layer("graph cluster s" + std::to_string(splits) + " c" + std::to_string(cluster) +
                      (splits == planned && cluster == auto_cluster ? " *" : ""),
                  fused_ms(splits, false, cluster));
    }
  }
  // The small per-layer kernels.
  float* residual = alloc.get<float>(static_cast<size_t>(M) * H);
  __half* normed = alloc.get<__half>(static_cast<size_t>(M) * H);
  __half* w = alloc.get<__half>(H);
  kernels::fill_random_half(w, H, 8, 0.1f, 1.0f, nullptr);
  cudaMemset(residual, 0, static_cast<size_t>(M) * H * 4);
  const double small_ms = time_ms([&] {
    for (int l = 0; l < L; ++l) {
      kernels::add_rmsnorm(normed, residual, w, normed, M, H, 1e-5f, nullptr);
      kernels::rope_and_write_kv(rope, nullptr);
      kernels::add_rmsnorm(normed, residual, w, normed, M, H, 1e-5f, nullptr);
      kernels::silu_and_mul(x, x + I, 2 * I, y, M, I, nullptr);
    }
  });
  row("norms+rope+kv+silu", small_ms, 0.0);
  // The same four one kind at a time (not in the sum), against their bytes: the
  // norm reads delta and residual and writes residual and its output; RoPE reads
  // q, k, v and writes q and the cache; silu reads gate and up and writes act.
  auto part = [&](const char* name, double ms, double bytes) {
    std::printf("%-22s %10.3f %10.3f %10.3f  (not in the sum)\n", name, ms, bytes / 1e9,
                bytes / (ms * 1e-3) / 1e9 / copy_gbs);
  };
  const double rows_d = static_cast<double>(M) * L;
  part("  2x add_rmsnorm", time_ms([&] {
         for (int l = 0; l < 2 * L; ++l) kernels::add_rmsnorm(normed, residual, w, normed, M, H, 1e-5f, nullptr);
       }),
       2.0 * rows_d * H * (2 + 4 + 4 + 2));
  part("  rope+kv write", time_ms([&] {
         for (int l = 0; l < L; ++l) kernels::rope_and_write_kv(rope, nullptr);
       }),
       rows_d * 2.0 * ((nq + 2 * nkv) * D + (nq + 2 * nkv) * D));
  part("  silu_and_mul", time_ms([&] {
         for (int l = 0; l < L; ++l) kernels::silu_and_mul(x, x + I, 2 * I, y, M, I, nullptr);
       }),
       rows_d * I * 2.0 * 3);
  // lm_head: fp16 [vocab, hidden] through cuBLAS.
  const int rows = batch;  // logits only for each sequence's last token
  __half* head = alloc.get<__half>(static_cast<size_t>(c.vocab_size) * H);
  kernels::fill_random_half(head, static_cast<size_t>(c.vocab_size) * H, 10, 0.01f, 0.0f, nullptr);
  float* logits = alloc.get<float>(static_cast<size_t>(rows) * c.vocab_size);
  cublasSetStream(cublas, nullptr);
  const double head_ms = time_ms([&] { kernels::lm_head_logits(cublas, normed, head, logits, rows, H, c.vocab_size); });
  row("lm_head (cuBLAS)", head_ms, static_cast<double>(c.vocab_size) * H * 2);
  std::printf("%-22s %10.3f\n", "sum", total);
  cublasDestroy(cublas);
  const cudaError_t err = cudaDeviceSynchronize();
  if (err != cudaSuccess) std::printf("CUDA error in breakdown: %s\n", cudaGetErrorString(err));
}

}  // namespace nibble::bench
