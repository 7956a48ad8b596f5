// Speed of the CPU backend on a demo model: prefill of a long prompt in one
// step, then batch-1 decode, and a batch of 8 decoding sequences.
//   engine_cpu_bench [--preset small] [--arch llama] [--prompt 256] [--decode 128] [--threads 0]
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "nibble/engine/cpu_backend.h"
#include "nibble/model/demo_model.h"
#include "nibble/model/loader.h"
#include "sequence_driver.h"

namespace {

using namespace nibble;
using Clock = std::chrono::steady_clock;

std::string option(const std::vector<std::string>& args, const std::string& name, const std::string& fallback) {
  auto it = std::find(args.begin(), args.end(), name);
  return it != args.end() && it + 1 != args.end() ? *(it + 1) : fallback;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// CPU time of the whole process (all threads): on a shared machine it shows
// the work done, where wall time also shows waiting for a core.
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  DemoModelOptions o;
  o.preset = option(args, "--preset", "small");
  const std::string arch = option(args, "--arch", "llama");
  o.architecture = arch == "qwen2" ? Architecture::Qwen2 : arch == "mistral" ? Architecture::Mistral : Architecture::Llama;
  const int prompt = std::stoi(option(args, "--prompt", "256"));
  const int decode = std::stoi(option(args, "--decode", "128"));
  const int threads = std::stoi(option(args, "--threads", "0"));
  const int batch = 8;

  const auto dir = std::filesystem::temp_directory_path() / ("nibble_cpu_bench_" + o.preset + "_" + arch);
  write_demo_model_weights(dir, o);
  auto model = load_model(dir);
  const int vocab = model->config().vocab_size;
  const int blocks_per_seq = (std::max(prompt, 32) + decode) / 16 + 2;
  auto backend = make_cpu_backend(*model, {.kv_cache_blocks = blocks_per_seq * (batch + 1), .threads = threads});
  std::vector<int32_t> blocks(blocks_per_seq * (batch + 1));
  std::iota(blocks.begin(), blocks.end(), 0);
  test::SequenceDriver driver(*backend, blocks);
  std::vector<int32_t> tokens(std::max(prompt, 32) + decode);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7919 + 13) % vocab);

  const int seq = driver.add(tokens);
  const double cpu_start = cpu_seconds();
  auto start = Clock::now();
  driver.step({{seq, prompt}});
  const double prefill = seconds_since(start);
  const double cpu_prefill = cpu_seconds() - cpu_start;
  start = Clock::now();
  for (int i = 0; i < decode; ++i) driver.step({{seq, 1}});
  const double decode_s = seconds_since(start);
  const double cpu_decode = cpu_seconds() - cpu_start - cpu_prefill;

  std::vector<test::SequenceDriver::Work> prefill_work, decode_work;
  for (int b = 0; b < batch; ++b) {
    const int s = driver.add(std::vector<int32_t>(tokens.begin(), tokens.begin() + 32 + decode));
    prefill_work.push_back({s, 32});
    decode_work.push_back({s, 1});
  }
  driver.step(prefill_work);
  start = Clock::now();
  for (int i = 0; i < decode; ++i) driver.step(decode_work);
  const double batched = seconds_since(start);

  std::printf("%s %s, threads %d: prefill %d tokens %.1f ms (%.0f tok/s, cpu %.1f ms); decode %.0f tok/s "
              "(%.2f ms/token, cpu %.2f ms/token); batch %d decode %.0f tok/s\n",
              o.preset.c_str(), arch.c_str(), threads, prompt, prefill * 1e3, prompt / prefill, cpu_prefill * 1e3,
              decode / decode_s, decode_s * 1e3 / decode, cpu_decode * 1e3 / decode, batch, batch * decode / batched);
  std::filesystem::remove_all(dir);
  return 0;
}
