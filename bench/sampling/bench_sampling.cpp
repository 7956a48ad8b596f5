// Sampling cost of a decode step on the CUDA backend: batch-64 decode with
// temperature 0.8 / top_p 0.95 (seeded) through device sampling
// (Backend::forward_sample) against the host path (forward() copies the logits,
// then the CPU Sampler on a thread pool as the engine loop does), with the
// greedy step (device argmax) as the floor; then the sampling kernel alone on
// random logits, against the same run's device copy bandwidth.
//   bench_sampling [config.json] [--steps N] [--context N] [--batch N]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "nibble/core/thread_pool.h"
#include "bench_common.h"
#include "nibble/engine/cuda_backend.h"
#include "nibble/engine/sampler.h"
#include "nibble/model/config.h"
#include "sampling/sample_jobs_host.h"
#include "sampling/sampling.h"

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = std::string(NIBBLE_SOURCE_DIR) + "/config/llama-3-8b.json";
  int steps = 30, context = 256, batch = 64;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--context" && i + 1 < argc) context = std::atoi(argv[++i]);
    else if (a == "--batch" && i + 1 < argc) batch = std::atoi(argv[++i]);
    else config_path = a;
  }
  try {
    if (!nibble::cuda_device_available()) {
      std::printf("no CUDA device\n");
      return 0;
    }
    const nibble::ModelConfig config = nibble::load_model_config(config_path);
    const int vocab = config.vocab_size;
    const double copy_gbs = nibble::bench::device_copy_bandwidth_gbs();
    nibble::CudaBackendOptions options;
    options.max_num_batched_tokens = std::max(context, batch);
    options.max_num_seqs = batch;
    auto backend = nibble::make_dummy_cuda_backend(config, options, 42);
    const int bs = backend->kv_cache_shape().block_size;
    const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
    nibble::ThreadPool pool(threads);
    std::printf("device %s | copy bandwidth %.0f GB/s | vocab %d | batch %d ctx %d | host sampling threads %zu\n",
                backend->memory_report().device_name.c_str(), copy_gbs, vocab, batch, context, threads);

    std::vector<nibble::bench::BenchSequence> seqs(batch);
    const int per = (context + 4 * steps + 64 + bs - 1) / bs;
    int next_block = 0;
    for (auto& s : seqs) {
      for (int i = 0; i < per; ++i) s.blocks.push_back(next_block++ % backend->kv_cache_shape().num_blocks);
      std::vector<nibble::bench::BenchSequence> one = {s};
      backend->forward_greedy(nibble::bench::make_bench_batch(one, context, bs, vocab));
      s = one[0];
    }

    nibble::SamplingParams params;
    params.temperature = 0.8;
    params.top_p = 0.95;
    params.seed = 1;
    auto rows_for = [&](std::vector<nibble::SampleRow>& rows) {
      rows.clear();
      for (int r = 0; r < batch; ++r) {
        nibble::SampleRow row;
        row.logits_row = r;
        row.input.params = &params;
        row.input.prompt_tokens = std::span<const int32_t>(seqs[r].tokens).first(context);
        row.input.output_tokens = std::span<const int32_t>(seqs[r].tokens).subspan(context);
        row.input.seed = 1000 + r;
        rows.push_back(row);
      }
    };
    std::vector<nibble::Sampler> samplers(threads);
    std::vector<float> logits;
    std::vector<nibble::SampleRow> rows;
    std::vector<double> greedy_ms, host_ms, device_ms;
    for (int i = 0; i < steps + 3; ++i) {
      auto b = nibble::bench::make_bench_batch(seqs, 1, bs, vocab);
      auto t0 = Clock::now();
      backend->forward_greedy(b);
      const double g = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();

      b = nibble::bench::make_bench_batch(seqs, 1, bs, vocab);
      rows_for(rows);
      t0 = Clock::now();
      backend->forward(b, logits);
      pool.parallel_for(threads, [&](size_t first, size_t last) {
        for (size_t c = first; c < last; ++c)
          for (size_t r = c * batch / threads; r < (c + 1) * batch / threads; ++r) {
            nibble::SampleInput in = rows[r].input;
            in.logits = std::span<const float>(logits).subspan(r * vocab, vocab);
            samplers[c].sample(in);
          }
      });
      const double h = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();

      b = nibble::bench::make_bench_batch(seqs, 1, bs, vocab);
      rows_for(rows);
      t0 = Clock::now();
      backend->forward_sample(b, rows);
      const double d = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (i >= 3) {
        greedy_ms.push_back(g);
        host_ms.push_back(h);
        device_ms.push_back(d);
      }
    }
    const double g = nibble::bench::median(greedy_ms), h = nibble::bench::median(host_ms), d = nibble::bench::median(device_ms);
    std::printf("\n%-58s %10s %12s\n", "decode step (median)", "ms/step", "vs greedy");
    std::printf("%-58s %10.3f %12s\n", "greedy: device argmax (floor)", g, "-");
    std::printf("%-58s %10.3f %+11.3f\n", "t0.8 top_p0.95: host path (copy logits + CPU Sampler)", h, h - g);
    std::printf("%-58s %10.3f %+11.3f\n", "t0.8 top_p0.95: device sampling (forward_sample)", d, d - g);
    backend.reset();

    // The kernel alone on random logits (normal, sigma 2, a few peaks).
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    std::vector<float> host(static_cast<size_t>(batch) * vocab);
    for (auto& v : host) v = normal(rng);
    float* d_logits = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d_logits), host.size() * sizeof(float));
    cudaMemcpy(d_logits, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
    std::printf("\n%-40s %10s %14s %12s\n", "sampling kernel, batch rows", "us", "row GB/s", "copy frac");
    auto kernel_case = [&](const char* name, const nibble::SamplingParams& p) {
      nibble::kernels::SampleJobBuilder builder(vocab);
      for (int r = 0; r < batch; ++r) {
        nibble::SampleInput in;
        in.params = &p;
        in.seed = 99 + r;
        builder.add(r, in, 1u << 20);
      }
      nibble::kernels::SampleJob* d_jobs = nullptr;
      nibble::kernels::SampleEntry* d_entries = nullptr;
      nibble::kernels::SampleOutput* d_out = nullptr;
      cudaMalloc(reinterpret_cast<void**>(&d_jobs), batch * sizeof(*d_jobs));
      cudaMalloc(reinterpret_cast<void**>(&d_entries), sizeof(*d_entries));
      cudaMalloc(reinterpret_cast<void**>(&d_out), batch * sizeof(*d_out));
      cudaMemcpy(d_jobs, builder.jobs().data(), batch * sizeof(*d_jobs), cudaMemcpyHostToDevice);
      cudaEvent_t start, stop;
      cudaEventCreate(&start);
      cudaEventCreate(&stop);
      std::vector<double> us;
      for (int i = 0; i < 23; ++i) {
        cudaEventRecord(start);
        nibble::kernels::sample_rows(d_logits, vocab, d_jobs, batch, d_entries, d_out, nullptr);
        cudaEventRecord(stop);
        cudaEventSynchronize(stop);
        float ms = 0;
        cudaEventElapsedTime(&ms, start, stop);
        if (i >= 3) us.push_back(ms * 1e3);
      }
      const double t = nibble::bench::median(us);
      const double gbs = static_cast<double>(host.size()) * sizeof(float) / (t * 1e-6) / 1e9;
      std::printf("%-40s %10.1f %14.0f %12.3f\n", name, t, gbs, gbs / copy_gbs);
      cudaFree(d_jobs);
      cudaFree(d_entries);
      cudaFree(d_out);
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
    };
    nibble::SamplingParams p;
    p.temperature = 0.0;
    kernel_case("greedy", p);
    p.temperature = 1.0;
    kernel_case("t1 (unfiltered)", p);
    p.temperature = 0.8;
    p.top_p = 0.95;
    kernel_case("t0.8 top_p0.95", p);
    p.top_p = 1.0;
    p.top_k = 50;
    kernel_case("t0.8 top_k50", p);
    p.top_k = 0;
    p.min_p = 0.05;
    kernel_case("t0.8 min_p0.05", p);
    p.min_p = 0.0;
    p.typical_p = 0.9;
    kernel_case("t0.8 typical_p0.9", p);
    cudaFree(d_logits);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
