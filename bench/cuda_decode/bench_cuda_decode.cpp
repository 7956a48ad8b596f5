// End-to-end timing of the CUDA backend on dummy weights at a real model's
// shapes (default config/llama-3-8b.json): batch-1 decode (CUDA graphs and
// eager), decode at 8-128 sequences and a 2,048-token prefill, each against the floor
// of the same run: weight bytes read per step / measured device copy bandwidth.
//   bench_cuda_decode [config.json] [--decode-steps N] [--prefill-tokens N] [--context N]
//                     [--no-programmatic-launch] [--pdl-max-tokens N] [--json FILE] [--prefill-only]
//                     [--prefill-variants] [--no-breakdown] [--batches 8,32,64,128] [--timeline B]
// --prefill-only: the prefill case (and time to first token) and its breakdown alone;
// --timeline B: only the kernel timeline of decode steps at batch B (CUDA graphs),
// from the device's own kernel timestamps (step_timeline.h);
// --prefill-variants: only the prefill GPTQ product variants (prefill_gemm_variants.h);
// --batches: the batch sizes decoded after batch 1 (at most max_num_seqs, 128).
// Also: time to first token (a 128-token prompt to its first sampled token) and
// the process's GPU memory (the plan is fixed at startup, so this is its peak).
// The table goes to stdout; --json writes the same numbers.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_common.h"
#include "decode_breakdown.h"
#include "prefill_gemm_variants.h"
#include "step_timeline.h"
#include "nibble/engine/cuda_backend.h"
#include "nibble/model/config.h"

namespace {

// "2,4,8" -> {2, 4, 8}; exits with a message on anything else (1-128 each).
std::vector<int> parse_batches(const std::string& list) {
  std::vector<int> out;
  size_t at = 0;
  while (at <= list.size()) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const std::string item = list.substr(at, comma - at);
    char* end = nullptr;
    const long value = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || value < 1 || value > 128) {
      std::fprintf(stderr, "--batches: '%s' is not a list of batch sizes from 1 to 128\n", list.c_str());
      std::exit(2);
    }
    out.push_back(static_cast<int>(value));
    at = comma + 1;
  }
  return out;
}

using Clock = std::chrono::steady_clock;

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = std::string(NIBBLE_SOURCE_DIR) + "/config/llama-3-8b.json";
  int decode_steps = 128, prefill_tokens = 2048, context = 512;
  std::string json_path;
  bool programmatic = true, prefill_only = false, variants_only = false, breakdown = true;
  int pdl_max_tokens = nibble::CudaBackendOptions{}.programmatic_launch_max_tokens;
  std::vector<int> batches = {8, 32, 64, 128};
  int timeline_batch = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--prefill-only") prefill_only = true;
    else if (a == "--no-breakdown") breakdown = false;
    else if (a == "--prefill-variants") variants_only = true;
    else if (a == "--decode-steps" && i + 1 < argc) decode_steps = std::atoi(argv[++i]);
    else if (a == "--prefill-tokens" && i + 1 < argc) prefill_tokens = std::atoi(argv[++i]);
    else if (a == "--context" && i + 1 < argc) context = std::atoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--no-programmatic-launch") programmatic = false;
    else if (a == "--pdl-max-tokens" && i + 1 < argc) pdl_max_tokens = std::atoi(argv[++i]);
    else if (a == "--batches" && i + 1 < argc) batches = parse_batches(argv[++i]);
    else if (a == "--timeline" && i + 1 < argc) timeline_batch = parse_batches(argv[++i]).at(0);
    else config_path = a;
  }
  try {
    if (!nibble::cuda_device_available()) {
      std::printf("no CUDA device\n");
      return 0;
    }
    const nibble::ModelConfig config = nibble::load_model_config(config_path);
    if (variants_only) {
      nibble::bench::print_prefill_gemm_variants(config, prefill_tokens);
      return 0;
    }
    // Traced from before the backend exists, so its CUDA graphs are traced too.
    if (timeline_batch > 0 && !nibble::bench::start_kernel_trace()) return 1;
    nibble::CudaBackendOptions options;
    options.max_num_batched_tokens = std::max(prefill_tokens, 64);
    options.max_num_seqs = 128;
    options.programmatic_launch = programmatic;
    options.programmatic_launch_max_tokens = pdl_max_tokens;
    const double copy_gbs = nibble::bench::device_copy_bandwidth_gbs();
    auto t0 = Clock::now();
    auto backend = nibble::make_dummy_cuda_backend(config, options, 42);
    const double init_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const auto& mem = backend->memory_report();
    const int bs = backend->kv_cache_shape().block_size, vocab = config.vocab_size;
    // Bytes a decode step must read: every weight except the embedding table (one row).
    const uint64_t embed_bytes = static_cast<uint64_t>(vocab) * config.hidden_size * 2;
    const uint64_t step_bytes = mem.weights - (config.tie_word_embeddings ? 0 : embed_bytes);
    const double floor_ms = step_bytes / (copy_gbs * 1e9) * 1e3;
    std::printf("device %s | copy bandwidth %.0f GB/s | weights %.2f GiB (read per decode step %.2f GiB) | "
                "KV %d tokens | init %.1f s\n",
                mem.device_name.c_str(), copy_gbs, mem.weights / 1073741824.0, step_bytes / 1073741824.0,
                mem.kv_tokens, init_s);
    std::printf("decode floor (bytes read / copy bandwidth): %.3f ms/token\n", floor_ms);

    int next_block = 0;
    auto new_seqs = [&](int n, int max_len) {
      std::vector<nibble::bench::BenchSequence> seqs(n);
      const int per = (max_len + bs - 1) / bs;
      for (auto& s : seqs)
        for (int i = 0; i < per; ++i) s.blocks.push_back(next_block++ % backend->kv_cache_shape().num_blocks);
      return seqs;
    };

    struct Result {
      std::string name;
      double ms, tokens_per_s, floor_frac;
    };
    std::vector<Result> results;
    std::printf("\n%-34s %10s %12s %10s\n", "case", "ms/step", "tokens/s", "floor frac");
    auto decode_case = [&](int batch, bool graphs) {
      backend->set_cuda_graphs(graphs);
      next_block = 0;
      auto seqs = new_seqs(batch, context + decode_steps + 16);
      for (auto& s : seqs) {  // prefill the context one sequence at a time
        std::vector<nibble::bench::BenchSequence> one = {s};
        backend->forward_greedy(nibble::bench::make_bench_batch(one, context, bs, vocab));
        s = one[0];
      }
      std::vector<double> times;
      for (int i = 0; i < decode_steps + 5; ++i) {
        auto b = nibble::bench::make_bench_batch(seqs, 1, bs, vocab);
        auto start = Clock::now();
        backend->forward_greedy(b);
        if (i >= 5) times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      }
      const double ms = nibble::bench::median(times);
      char name[64];
      std::snprintf(name, sizeof name, "decode batch %d ctx %d %s", batch, context, graphs ? "graphs" : "eager");
      std::printf("%-34s %10.3f %12.1f %10.3f\n", name, ms, batch * 1e3 / ms, floor_ms / ms);
      results.push_back({name, ms, batch * 1e3 / ms, floor_ms / ms});
    };
    if (timeline_batch > 0) {
      constexpr int kWarmup = 3, kSteps = 5;
      backend->set_cuda_graphs(true);
      auto seqs = new_seqs(timeline_batch, context + kWarmup + kSteps + 16);
      for (auto& s : seqs) {
        std::vector<nibble::bench::BenchSequence> one = {s};
        backend->forward_greedy(nibble::bench::make_bench_batch(one, context, bs, vocab));
        s = one[0];
      }
      for (int i = 0; i < kWarmup; ++i) backend->forward_greedy(nibble::bench::make_bench_batch(seqs, 1, bs, vocab));
      nibble::bench::take_kernel_trace();  // the prefill and warm-up steps
      for (int i = 0; i < kSteps; ++i) backend->forward_greedy(nibble::bench::make_bench_batch(seqs, 1, bs, vocab));
      const auto spans = nibble::bench::take_kernel_trace();
      nibble::bench::stop_kernel_trace();
      std::printf("decode batch %d, context %d, CUDA graphs: %d steps traced\n", timeline_batch, context, kSteps);
      nibble::bench::print_kernel_timeline(spans, kSteps);
      return 0;
    }
    if (!prefill_only) {
      decode_case(1, true);
      decode_case(1, false);
      for (int batch : batches) decode_case(batch, true);
    }

    backend->set_cuda_graphs(true);
    std::vector<double> times;
    for (int i = 0; i < 8; ++i) {
      next_block = 0;
      auto seqs = new_seqs(1, prefill_tokens);
      auto b = nibble::bench::make_bench_batch(seqs, prefill_tokens, bs, vocab);
      auto start = Clock::now();
      backend->forward_greedy(b);
      if (i >= 1) times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    const double ms = nibble::bench::median(times);
    // 2 FLOPs per weight per token in the linears and lm_head (attention excluded).
    const double linear_params =
        static_cast<double>(config.num_hidden_layers) *
            (static_cast<double>(config.hidden_size) * (config.num_attention_heads + 2 * config.num_key_value_heads) *
                 config.head_dim +
             static_cast<double>(config.num_attention_heads) * config.head_dim * config.hidden_size +
             3.0 * config.hidden_size * config.intermediate_size);
    const double tflops = 2.0 * linear_params * prefill_tokens / (ms * 1e-3) / 1e12;
    char name[64];
    std::snprintf(name, sizeof name, "prefill %d tokens", prefill_tokens);
    std::printf("%-34s %10.3f %12.1f %10s  (%.0f TFLOP/s in the linears)\n", name, ms, prefill_tokens * 1e3 / ms, "-",
                tflops);
    results.push_back({name, ms, prefill_tokens * 1e3 / ms, 0.0});
    // Time to first token: a 128-token prompt's prefill and its first token.
    std::vector<double> ttft;
    for (int i = 0; i < 6; ++i) {
      next_block = 0;
      auto seqs = new_seqs(1, 128);
      auto b = nibble::bench::make_bench_batch(seqs, 128, bs, vocab);
      auto start = Clock::now();
      backend->forward_greedy(b);
      if (i >= 1) ttft.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    const double ttft_ms = nibble::bench::median(ttft);
    std::printf("%-34s %10.3f\n", "time to first token (128 tokens)", ttft_ms);
    results.push_back({"time to first token (128 tokens)", ttft_ms, 0.0, 0.0});
    size_t free_mem = 0, total_mem = 0;
    cudaMemGetInfo(&free_mem, &total_mem);
    const double used_gib = static_cast<double>(total_mem - free_mem) / 1073741824.0;
    std::printf("GPU memory in use (peak: the pool is fixed at startup): %.2f GiB of %.2f GiB\n", used_gib,
                total_mem / 1073741824.0);
    if (!json_path.empty()) {
      FILE* f = std::fopen(json_path.c_str(), "w");
      if (!f) throw std::runtime_error("cannot write " + json_path);
      std::fprintf(f, "{\"device\": \"%s\", \"config\": \"%s\", \"copy_gbs\": %.1f, \"floor_ms\": %.4f, "
                   "\"gpu_memory_gib\": %.3f, \"results\": [",
                   mem.device_name.c_str(), config_path.c_str(), copy_gbs, floor_ms, used_gib);
      for (size_t i = 0; i < results.size(); ++i)
        std::fprintf(f, "%s\n  {\"case\": \"%s\", \"ms\": %.4f, \"tokens_per_s\": %.1f, \"floor_frac\": %.4f}",
                     i ? "," : "", results[i].name.c_str(), results[i].ms, results[i].tokens_per_s,
                     results[i].floor_frac);
      std::fprintf(f, "\n]}\n");
      std::fclose(f);
    }
    backend.reset();  // free the model before the breakdown allocates its own copies
    if (!prefill_only && breakdown) {
      nibble::bench::print_step_breakdown(config, 1, 1, context, copy_gbs);
      nibble::bench::print_step_breakdown(config, 32, 1, context, copy_gbs);
    }
    if (breakdown) nibble::bench::print_step_breakdown(config, 1, prefill_tokens, 0, copy_gbs);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
