// Benchmark of the GPTQ matrix product on the Llama-3-8B layer shapes.
//
//   bench_gptq_gemm [--json FILE] [--quick] [--big] [--shape TEXT] [--ms M,M,...] [--profile M]
//                   [--profile-kernel 0-4] [--profile-small M]
//
// --big adds the Llama-3-70B decode shapes; --shape keeps the shapes whose name
// contains TEXT (and skips the lm_head), --ms times only the listed M.
//
// Measures the device-to-device copy bandwidth first (bytes read + written), then
// for each shape and M: the fused register kernel, the TMA-streaming kernel (M <= 2,
// compute capability 9.0+), the tensor-core kernel (CUDA-graph
// replays over enough weight copies to defeat the L2), the dequantize + cuBLAS
// path, and cuBLAS fp16 on the already-dequantized weight. Times are medians of CUDA-event measurements after
// warm-up. Prints a Markdown table; --json writes every number.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gptq_gemm/gptq_gemm.h"
#include "gptq_gemm/gptq_gemm_plan.h"
#include "gptq_gemm/gptq_layout.h"
#include "gptq_gemm/gptq_mma_plan.h"
#include "nibble/core/half.h"

namespace {

using namespace nibble::kernels;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "CUDA error in %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cuBLAS error %d in %s\n", static_cast<int>(s), what);
    std::exit(1);
  }
}

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  return p;
}

// Median time in microseconds of `body` (which runs `calls` products), after warm-up.
double median_us(cudaStream_t stream, int calls, int repeats, const std::function<void()>& body) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  for (int i = 0; i < 3; ++i) body();
  check(cudaStreamSynchronize(stream), "warm-up");
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    check(cudaEventRecord(start, stream), "record");
    body();
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    times.push_back(1000.0 * ms / calls);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double copy_bandwidth_gbs(cudaStream_t stream) {
  const size_t bytes = size_t{1} << 30;
  void* a = device_alloc(bytes);
  void* b = device_alloc(bytes);
  check(cudaMemset(a, 1, bytes), "memset");
  const double us = median_us(stream, 1, 20, [&] { check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream), "copy"); });
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (us * 1e-6) / 1e9;
}

// A random checkpoint linear (never zeros), prepared for the kernel.
GptqPrepared random_layer(int64_t K, int64_t N, int bits, int group, bool act_order, std::mt19937& rng) {
  const int pack = 32 / bits;
  const int64_t groups = gptq_group_count(K, group);
  std::vector<int32_t> qweight(static_cast<size_t>(K / pack * N)), qzeros(static_cast<size_t>(groups * N / pack));
  std::uniform_int_distribution<uint32_t> word;
  for (auto& w : qweight) w = static_cast<int32_t>(word(rng));
  for (auto& w : qzeros) w = static_cast<int32_t>(word(rng));
  std::uniform_real_distribution<float> sd(0.002f, 0.02f);
  std::vector<uint16_t> scales(static_cast<size_t>(groups * N));
  for (auto& s : scales) s = nibble::float_to_fp16(sd(rng));
  std::vector<int32_t> g_idx(static_cast<size_t>(K));
  std::vector<int32_t> order(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) order[static_cast<size_t>(k)] = static_cast<int32_t>(k);
  if (act_order) std::shuffle(order.begin(), order.end(), rng);
  const int64_t gs = group <= 0 ? K : group;
  for (int64_t k = 0; k < K; ++k) g_idx[static_cast<size_t>(order[static_cast<size_t>(k)])] = static_cast<int32_t>(k / gs);
  GptqCheckpointView v{K, N, bits, group, true, qweight.data(), qzeros.data(), scales.data(), g_idx.data()};
  return gptq_prepare(v);
}

struct LayerCopies {
  std::vector<GptqDeviceWeights> views;
  std::vector<void*> buffers;
  size_t bytes_per_copy = 0;  // qweight + scales + zeros (+ perm)
  ~LayerCopies() {
    for (void* b : buffers) cudaFree(b);
  }
};

void upload_copies(const GptqPrepared& host, size_t min_total_bytes, LayerCopies& out) {
  const size_t qb = host.qweight.size() * 4, sb = host.scales.size() * 2, zb = host.zeros.size() * 2,
               pb = host.perm.size() * 4;
  out.bytes_per_copy = qb + sb + zb + pb;
  const size_t copies = std::max<size_t>(2, (min_total_bytes + out.bytes_per_copy - 1) / out.bytes_per_copy);
  for (size_t i = 0; i < copies; ++i) {
    auto* q = static_cast<uint32_t*>(device_alloc(qb));
    auto* s = static_cast<__half*>(device_alloc(sb));
    auto* z = static_cast<__half*>(device_alloc(zb));
    int32_t* p = pb ? static_cast<int32_t*>(device_alloc(pb)) : nullptr;
    check(cudaMemcpy(q, host.qweight.data(), qb, cudaMemcpyHostToDevice), "upload");
    check(cudaMemcpy(s, host.scales.data(), sb, cudaMemcpyHostToDevice), "upload");
    check(cudaMemcpy(z, host.zeros.data(), zb, cudaMemcpyHostToDevice), "upload");
    if (p) check(cudaMemcpy(p, host.perm.data(), pb, cudaMemcpyHostToDevice), "upload");
    out.buffers.insert(out.buffers.end(), {q, s, z});
    if (p) out.buffers.push_back(p);
    out.views.push_back(gptq_device_view(host, q, s, z, p));
  }
}

// Times `calls` launches captured in one CUDA graph.
double graph_us(cudaStream_t stream, int calls, const std::function<void(int)>& one) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
  for (int i = 0; i < calls; ++i) one(i);
  check(cudaStreamEndCapture(stream, &graph), "end capture");
  check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  const double us = median_us(stream, calls, 25, [&] { check(cudaGraphLaunch(exec, stream), "graph launch"); });
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return us;
}

struct Row {
  std::string shape, variant, path;
  int64_t K, N, M;
  double us, gbs, frac_copy, tflops, cublas_us, cublas_tflops;
  std::string plan;
};

std::string plan_text(int64_t M, int64_t N, int64_t K, int bits, size_t ws, const GemvOverride& o) {
  const GemvPlan p = plan_gemv_on_device(M, N, K, bits, ws, o);
  char text[96];
  std::snprintf(text, sizeof text, "t%d/rows%d/splits%d/blocks%d", p.threads, p.rows_per_split, p.splits,
                p.mchunks * p.ntiles * p.splits);
  return text;
}

std::string mma_plan_text(int64_t M, int64_t N, int64_t K, size_t ws, const MmaOverride& o) {
  const MmaPlan p = plan_mma(M, N, K, device_sm_count(), ws, o, wgmma_kernel_available(), mma_cluster_capacity());
  char text[96];
  std::snprintf(text, sizeof text, "%s m%d/rows%d/splits%d%s/blocks%d", p.wide ? "wide" : p.wgmma ? "wgmma" : "narrow",
                p.m_tile, p.rows_per_split, p.splits, p.cluster ? "(cluster)" : "", p.mchunks * p.ntiles * p.splits);
  return text;
}

// "1,2,16" -> {1, 2, 16}.
std::vector<int64_t> parse_ms(const std::string& list) {
  std::vector<int64_t> out;
  for (size_t at = 0; at < list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    out.push_back(std::atoll(list.substr(at, comma - at).c_str()));
    at = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, shape_filter;
  std::vector<int64_t> ms = {1, 2, 4, 6, 8, 16, 32, 64, 128, 256, 2048};
  bool quick = false, big = false;
  int64_t profile_m = 0, profile_small = 0;
  int profile_kernel = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--quick") quick = true;
    else if (a == "--big") big = true;
    else if (a == "--shape" && i + 1 < argc) shape_filter = argv[++i];
    else if (a == "--ms" && i + 1 < argc) ms = parse_ms(argv[++i]);
    else if (a == "--profile" && i + 1 < argc) profile_m = std::atoll(argv[++i]);
    else if (a == "--profile-kernel" && i + 1 < argc) profile_kernel = std::atoi(argv[++i]);
    else if (a == "--profile-small" && i + 1 < argc) profile_small = std::atoll(argv[++i]);
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "props");
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  cublasHandle_t cublas;
  check(cublasCreate(&cublas), "cublasCreate");
  check(cublasSetStream(cublas, stream), "cublasSetStream");

  const double copy_gbs = copy_bandwidth_gbs(stream);
  std::printf("device: %s, %d SMs, L2 %d MB; copy bandwidth (read+write) %.0f GB/s\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_gbs);

  if (wgmma_kernel_available()) {
    for (int tile : {kWgmmaSmallTokens, kWgmmaTokens, kWgmmaLargeTokens}) {
      std::printf("Hopper kernel, %d tokens: clusters resident at once (size 2/4/8):", tile);
      for (int size : {2, 4, 8}) std::printf(" %d", wgmma_max_active_clusters(tile, size));
      std::printf("\n");
    }
    for (int tile : {8, 16}) {
      std::printf("narrow kernel, %d tokens: clusters resident at once (size 2/4/8/12/16):", tile);
      for (int size : {2, 4, 8, 12, 16}) std::printf(" %d", narrow_mma_max_active_clusters(tile, size));
      std::printf("\n");
    }
  }

  const int64_t max_m = 256;
  const int64_t max_k = big ? 28672 : 14336, max_n = big ? 57344 : 28672;
  // Room for the tensor-core kernel's split-K up to M = 256 (and the fused kernel's).
  const size_t splitk_bytes = gptq_splitk_workspace_bytes(max_m, max_n);
  void* splitk = device_alloc(splitk_bytes);
  check(cudaMemset(splitk, 0, splitk_bytes), "memset");
  const size_t dequant_bytes = static_cast<size_t>(max_k) * max_n * 2;
  void* dequant = device_alloc(dequant_bytes);
  GptqWorkspace ws{splitk, splitk_bytes, dequant, dequant_bytes, cublas};

  std::mt19937 rng(42);
  std::vector<uint16_t> xh(static_cast<size_t>(std::max<int64_t>(max_m * 128256, 2048 * max_k)));  // M up to 2048
  std::uniform_real_distribution<float> xd(-1.f, 1.f);
  for (auto& v : xh) v = nibble::float_to_fp16(xd(rng));
  auto* x = static_cast<__half*>(device_alloc(xh.size() * 2));
  check(cudaMemcpy(x, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice), "x");
  auto* y = static_cast<__half*>(device_alloc(static_cast<size_t>(2048) * 128256 * 2));
  auto* wfp16 = static_cast<__half*>(device_alloc(static_cast<size_t>(max_k) * max_n * 2));
  auto* acc32 = static_cast<float*>(device_alloc(static_cast<size_t>(kMmaNarrowMMax) * max_n * sizeof(float)));

  if (profile_small > 0) {
    // For a profiler: the register kernel, then the streaming kernel, on 4096x14336 at M = profile_small.
    const GptqPrepared host = random_layer(4096, 14336, 4, 128, false, rng);
    LayerCopies copies;
    upload_copies(host, 0, copies);
    gptq_gemm_fused(copies.views[0], x, profile_small, y, nullptr, ws, stream);
    if (gptq_gemm_stream_usable(copies.views[0], profile_small, ws))
      gptq_gemm_stream(copies.views[0], x, profile_small, y, nullptr, ws, stream);
    check(cudaStreamSynchronize(stream), "profile");
    return 0;
  }
  if (profile_m > 0) {
    // For a profiler: the tensor-core kernel twice on each big layer shape at M = profile_m.
    for (auto [K, N] : {std::pair<int64_t, int64_t>{4096, 14336}, {14336, 4096}}) {
      const GptqPrepared host = random_layer(K, N, 4, 128, false, rng);
      LayerCopies copies;
      upload_copies(host, 0, copies);
      const MmaOverride forced{0, 0, profile_kernel};
      for (int r = 0; r < 2; ++r) gptq_gemm_mma_with(copies.views[0], x, profile_m, y, nullptr, ws, stream, forced);
      check(cudaStreamSynchronize(stream), "profile");
      std::printf("profiled K=%lld N=%lld M=%lld: %s\n", static_cast<long long>(K), static_cast<long long>(N),
                  static_cast<long long>(profile_m), mma_plan_text(profile_m, N, K, splitk_bytes, forced).c_str());
    }
    return 0;
  }

  struct Shape { const char* name; int64_t K, N; };
  std::vector<Shape> shapes = {{"qkv-like 4096x4096", 4096, 4096}, {"kv 4096x1024", 4096, 1024},
                               {"gate/up 4096x14336", 4096, 14336}, {"down 14336x4096", 14336, 4096},
                               {"fused qkv 4096x6144", 4096, 6144}, {"fused gate+up 4096x28672", 4096, 28672}};
  if (big)  // the Llama-3-70B decode products
    shapes.insert(shapes.end(), {{"70B fused qkv 8192x10240", 8192, 10240}, {"70B o 8192x8192", 8192, 8192},
                                 {"70B fused gate+up 8192x57344", 8192, 57344}, {"70B down 28672x8192", 28672, 8192}});
  struct Variant { const char* name; int bits, group; bool act; bool all_m; };
  const Variant variants[] = {{"4bit-g128", 4, 128, false, true}, {"4bit-g128-act", 4, 128, true, false},
                              {"8bit-g128", 8, 128, false, false}};
  if (!shape_filter.empty())
    std::erase_if(shapes, [&](const Shape& s) { return std::string(s.name).find(shape_filter) == std::string::npos; });
  const size_t rotate_bytes = size_t{400} << 20;  // well past the 50-60 MB L2
  std::vector<Row> rows;

  for (const Shape& shape : shapes) {
    const bool shape_70b = std::string(shape.name).rfind("70B", 0) == 0;
    for (const Variant& var : variants) {
      if (shape_70b && &var != &variants[0]) continue;  // 70B shapes: plain 4-bit only
      const GptqPrepared host = random_layer(shape.K, shape.N, var.bits, var.group, var.act, rng);
      LayerCopies copies;
      upload_copies(host, rotate_bytes, copies);
      const int ncopies = static_cast<int>(copies.views.size());
      gptq_dequantize(copies.views[0], 0, shape.N, wfp16, stream);
      for (int64_t M : ms) {
        if (!var.all_m && M > 1 && !(var.act && (M == 16 || M == 64))) continue;
        const double flops = 2.0 * M * shape.K * shape.N;
        const double io_bytes = static_cast<double>(copies.bytes_per_copy) + 2.0 * M * (shape.K + shape.N);
        const float alpha = 1.f, beta = 0.f;
        const double cublas_us = median_us(stream, 1, 25, [&] {
          check(cublasGemmEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(shape.N), static_cast<int>(M),
                             static_cast<int>(shape.K), &alpha, wfp16, CUDA_R_16F, static_cast<int>(shape.N), x,
                             CUDA_R_16F, static_cast<int>(shape.K), &beta, y, CUDA_R_16F, static_cast<int>(shape.N),
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                "gemm");
        });
        auto add = [&](const char* path, double us, const std::string& plan) {
          rows.push_back(Row{shape.name, var.name, path, shape.K, shape.N, M, us, io_bytes / (us * 1e-6) / 1e9,
                             io_bytes / (us * 1e-6) / 1e9 / copy_gbs, flops / (us * 1e-6) / 1e12, cublas_us,
                             flops / (cublas_us * 1e-6) / 1e12, plan});
        };
        if (M <= 16 && !(var.act && M > 4)) {
          std::vector<GemvOverride> overrides = {GemvOverride{}, GemvOverride{0, 0, 0, 1}};
          if (M <= 4 && !quick && var.all_m)
            for (int t : {64, 128})
              for (int b : {4, 8, 12, 16}) overrides.push_back(GemvOverride{t, 0, b});
          for (const GemvOverride& o : overrides) {
            const double us = graph_us(stream, ncopies, [&](int i) {
              gptq_gemm_fused_with(copies.views[static_cast<size_t>(i)], x, M, y, nullptr, ws, stream, o);
            });
            const char* path = o.threads != 0 ? "fused-sweep" : o.pdl == 1 ? "fused-pdl" : "fused";
            add(path, us, plan_text(M, shape.N, shape.K, var.bits, splitk_bytes, o));
          }
        }
        if (gptq_gemm_accumulates(copies.views[0], M)) {  // into fp32 rows (the residual stream)
          const double us = graph_us(stream, ncopies, [&](int i) {
            gptq_gemm_accumulate(copies.views[static_cast<size_t>(i)], x, M, acc32, nullptr, ws, stream);
          });
          const bool fused = M <= kGptqGemvMMax && (M == 1 || var.bits != 4);
          add(fused ? "fused-acc" : "mma-acc", us, "fp32 atomics, no arrival counting");
        }
        if (M <= 2 && gptq_gemm_stream_usable(copies.views[0], M, ws)) {
          for (int per_sm : {0, 2}) {
            const int blocks = per_sm * prop.multiProcessorCount;
            const double us = graph_us(stream, ncopies, [&](int i) {
              gptq_gemm_stream_with(copies.views[static_cast<size_t>(i)], x, M, y, nullptr, ws, stream, blocks);
            });
            add(per_sm ? "stream-sweep" : "stream", us,
                per_sm ? "TMA stream-K, " + std::to_string(per_sm) + " blocks per SM" : "TMA stream-K, default grid");
          }
        }
        if (var.bits == 4) {  // also below kGptqSmallMMax: where the crossover lies
          std::vector<MmaOverride> overrides = {MmaOverride{}};
          // The kernel the plan does not pick, where the two are close.
          if (M >= 16 && M <= 256)
            overrides.push_back(MmaOverride{0, 0, mma_wide_preferred(M, shape.N, shape.K) ? 1 : 2});
          // The Hopper kernel against mma.sync on the same narrow tiling.
          if (M >= 8 && wgmma_kernel_available())
            overrides.push_back(MmaOverride{0, 0, M > 32 && M <= kWgmmaTokens ? 1 : 3});
          // Its 128-token tiles against dequantize + cuBLAS on prefill-sized M.
          if (M >= 96 && wgmma_kernel_available()) overrides.push_back(MmaOverride{0, 0, 4});
          // Its splits added in the workspace rather than in a cluster (the
          // narrow kernel's likewise up to 16 tokens).
          if (M > 16 && M <= 256 && wgmma_kernel_available()) overrides.push_back(MmaOverride{0, 0, 3, 2});
          if (M <= 16 && wgmma_kernel_available()) overrides.push_back(MmaOverride{0, 0, 1, 2});
          // ... and only in a cluster (fewer splits where the planned count does not fit).
          if (M <= 16 && wgmma_kernel_available()) overrides.push_back(MmaOverride{0, 0, 1, 1});
          if ((M == 16 || M == 64) && var.all_m && !quick)
            for (int per_sm : {1, 2, 3, 4, 6}) overrides.push_back(MmaOverride{0, per_sm * prop.multiProcessorCount});
          for (const MmaOverride& o : overrides) {
            const int calls = M >= 1024 ? std::min(ncopies, 8) : ncopies;
            const double us = graph_us(stream, calls, [&](int i) {
              gptq_gemm_mma_with(copies.views[static_cast<size_t>(i)], x, M, y, nullptr, ws, stream, o);
            });
            const char* path = o.blocks_target                 ? "mma-sweep"
                               : o.kernel == 1 && o.reduce == 2 ? "mma-narrow-ws"
                               : o.kernel == 1 && o.reduce == 1 ? "mma-narrow-cl"
                               : o.kernel == 1                  ? "mma-narrow"
                               : o.kernel == 2 ? "mma-wide"
                               : o.kernel == 3 ? (o.reduce == 2 ? "mma-wgmma-ws" : "mma-wgmma")
                               : o.kernel == 4 ? "mma-wgmma128"
                                               : "mma";
            add(path, us, mma_plan_text(M, shape.N, shape.K, splitk_bytes, o));
          }
        }
        if (M >= 8) {
          int i = 0;
          const double us = median_us(stream, 4, 9, [&] {
            for (int j = 0; j < 4; ++j)
              gptq_gemm_dequant_cublas(copies.views[static_cast<size_t>(i++ % ncopies)], x, M, y, nullptr, ws, stream);
          });
          add("dequant+cublas", us, "");
        }
      }
      check(cudaStreamSynchronize(stream), "shape done");
      std::fprintf(stderr, "done %s %s (%d copies)\n", shape.name, var.name, ncopies);
    }
  }

  // The fp16 lm_head through cuBLAS: memory-bound at small M.
  if (shape_filter.empty()) {
    const int64_t K = 4096, N = 128256;
    auto* w = static_cast<__half*>(device_alloc(static_cast<size_t>(K) * N * 2));
    std::vector<uint16_t> wh(static_cast<size_t>(K) * N);
    for (size_t i = 0; i < wh.size(); ++i) wh[i] = xh[i % xh.size()];
    check(cudaMemcpy(w, wh.data(), wh.size() * 2, cudaMemcpyHostToDevice), "lm_head");
    for (int64_t M : ms) {
      const float alpha = 1.f, beta = 0.f;
      const double us = median_us(stream, 1, 25, [&] {
        check(cublasGemmEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
                           static_cast<int>(K), &alpha, w, CUDA_R_16F, static_cast<int>(N), x, CUDA_R_16F,
                           static_cast<int>(K), &beta, y, CUDA_R_16F, static_cast<int>(N), CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT),
              "lm_head gemm");
      });
      const double bytes = 2.0 * K * N + 2.0 * M * (K + N);
      const double flops = 2.0 * M * K * N;
      rows.push_back(Row{"lm_head 4096x128256", "fp16", "cublas", K, N, M, us, bytes / (us * 1e-6) / 1e9,
                         bytes / (us * 1e-6) / 1e9 / copy_gbs, flops / (us * 1e-6) / 1e12, us,
                         flops / (us * 1e-6) / 1e12, ""});
    }
    cudaFree(w);
  }

  std::printf("\n| shape | weights | path | M | us | GB/s | of copy BW | TFLOP/s | cuBLAS fp16 us | cuBLAS TFLOP/s | plan |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    if (r.path == "fused-sweep" || r.path == "mma-sweep") continue;
    std::printf("| %s | %s | %s | %lld | %.1f | %.0f | %.1f%% | %.1f | %.1f | %.1f | %s |\n", r.shape.c_str(),
                r.variant.c_str(), r.path.c_str(), static_cast<long long>(r.M), r.us, r.gbs, 100 * r.frac_copy,
                r.tflops, r.cublas_us, r.cublas_tflops, r.plan.c_str());
  }
  std::printf("\ntensor-core sweep (blocks target 1, 2, 3, 4, 6 per SM): best per shape and M\n");
  for (const Row& d : rows) {
    if (d.path != "mma" || d.variant != "4bit-g128" || (d.M != 16 && d.M != 64)) continue;
    const Row* best = &d;
    for (const Row& r : rows)
      if (r.path == "mma-sweep" && r.shape == d.shape && r.M == d.M && r.variant == d.variant && r.us < best->us)
        best = &r;
    std::printf("%s M=%lld default %.1f us (%.1f%%, %s) best %.1f us (%.1f%%, %s)\n", d.shape.c_str(),
                static_cast<long long>(d.M), d.us, 100 * d.frac_copy, d.plan.c_str(), best->us, 100 * best->frac_copy,
                best->plan.c_str());
  }
  std::printf("\nfused-kernel sweep (M <= 4, 4bit-g128): best per shape and M\n");
  for (const Row& d : rows) {
    if (d.path != "fused" || d.variant != "4bit-g128" || d.M > 4) continue;
    const Row* best = &d;
    for (const Row& r : rows)
      if (r.path == "fused-sweep" && r.shape == d.shape && r.M == d.M && r.variant == d.variant && r.us < best->us)
        best = &r;
    std::printf("%s M=%lld default %.1f us (%.1f%%, %s) best %.1f us (%.1f%%, %s)\n", d.shape.c_str(),
                static_cast<long long>(d.M), d.us, 100 * d.frac_copy, d.plan.c_str(), best->us, 100 * best->frac_copy,
                best->plan.c_str());
  }

  if (!json_path.empty()) {
    FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"sms\": %d,\n  \"copy_gbs\": %.1f,\n  \"rows\": [\n", prop.name,
                 prop.multiProcessorCount, copy_gbs);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::fprintf(f,
                   "    {\"shape\": \"%s\", \"weights\": \"%s\", \"path\": \"%s\", \"K\": %lld, \"N\": %lld, \"M\": %lld, "
                   "\"us\": %.3f, \"gbs\": %.1f, \"frac_copy\": %.4f, \"tflops\": %.2f, \"cublas_fp16_us\": %.3f, "
                   "\"cublas_fp16_tflops\": %.2f, \"plan\": \"%s\"}%s\n",
                   r.shape.c_str(), r.variant.c_str(), r.path.c_str(), static_cast<long long>(r.K),
                   static_cast<long long>(r.N), static_cast<long long>(r.M), r.us, r.gbs, r.frac_copy, r.tflops,
                   r.cublas_us, r.cublas_tflops, r.plan.c_str(), i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
  }
  cublasDestroy(cublas);
  return 0;
}
