// Sliding-window attention on the GPU: the CUDA backend against the CPU backend
// on a small Mistral demo model whose config sets sliding_window 32, with
// prompts longer than the window (one-shot, chunked, a prefix-cache hit) and
// decode steps that continue past it, eager and through CUDA graphs. The demo
// presets have no window, so the test writes its own config. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "nibble/engine/cpu_backend.h"
#include "nibble/engine/cuda_backend.h"
#include "nibble/model/demo_model.h"
#include "nibble/model/loader.h"
#include "step_driver.h"

namespace nibble::test {
namespace {

namespace fs = std::filesystem;

constexpr int kWindow = 32;
constexpr int kBlocks = 96;
constexpr int kBlockSize = 16;

// The "small" Mistral demo model (hidden 256, 8 heads / 2 KV heads, head_dim 32,
// act-order GPTQ) with sliding_window = window (0: the preset's, none).
std::unique_ptr<LoadedModel> windowed_demo_model(int window) {
  DemoModelOptions o;
  o.preset = "small";
  o.architecture = Architecture::Mistral;
  o.seed = 11;
  const char* scratch = std::getenv("NIBBLE_TEST_SCRATCH");
  const fs::path dir =
      fs::path(scratch ? scratch : NIBBLE_BINARY_DIR) / "cuda_sliding_window_demo" / ("window-" + std::to_string(window));
  fs::remove_all(dir);
  write_demo_model_weights(dir, o);
  ModelConfig c = demo_model_config(o);
  if (window > 0) c.sliding_window = window;
  std::ofstream(dir / "config.json") << model_config_json(c);
  return load_model(dir);
}

std::vector<int32_t> random_tokens(int n, int vocab, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double d = 0, n = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    d += (got[i] - want[i]) * double(got[i] - want[i]);
    n += double(want[i]) * want[i];
  }
  return std::sqrt(d / std::max(n, 1e-30));
}

int argmax_row(const std::vector<float>& logits, int r, int vocab) {
  const auto first = logits.begin() + static_cast<size_t>(r) * vocab;
  return static_cast<int>(std::max_element(first, first + vocab) - first);
}

// Steps past the window: a 100-token prompt in two chunks (37, 63), a one-shot
// 70-token prompt, a 20-token prompt that decodes past the window, and a
// prefix-cache hit on the first 48 tokens of the first prompt (30 new tokens);
// then 40 decode steps of all four. Each step is fed to every backend; the
// tokens appended are backend 0's greedy choices. Calls check(step, outs).
template <typename Check>
void run_windowed_schedule(const std::vector<Backend*>& backends, int vocab, std::mt19937& rng, Check check) {
  std::vector<int32_t> free_blocks(kBlocks);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
  StepDriver driver(kBlockSize, free_blocks);
  const auto long_prompt = random_tokens(100, vocab, rng);
  const int a = driver.add(long_prompt);
  const int b = driver.add(random_tokens(70, vocab, rng));
  const int c = driver.add(random_tokens(20, vocab, rng));
  std::vector<std::vector<StepDriver::Work>> steps = {{{a, 37}, {b, 70}, {c, 20}}, {{a, 63}, {b, 1}, {c, 1}}};
  int d = -1;
  for (int i = 0; i < 40; ++i) steps.push_back({{a, 1}, {b, 1}, {c, 1}});
  for (size_t s = 0; s < steps.size(); ++s) {
    if (s == 2) {  // a's first three blocks are full: share them
      auto tokens = std::vector<int32_t>(long_prompt.begin(), long_prompt.begin() + 48);
      const auto more = random_tokens(30, vocab, rng);
      tokens.insert(tokens.end(), more.begin(), more.end());
      const auto& ab = driver.blocks(a);
      d = driver.add_cached(tokens, {ab.begin(), ab.begin() + 3}, 48);
      steps[s].push_back({d, 30});
    } else if (d >= 0) {
      steps[s].push_back({d, 1});
    }
    for (const auto& w : steps[s])
      while (driver.remaining(w.seq) < w.count) driver.append(w.seq, static_cast<int32_t>(rng() % vocab));
    const Batch batch = driver.step(steps[s]);
    std::vector<std::vector<float>> outs(backends.size());
    for (size_t i = 0; i < backends.size(); ++i) backends[i]->forward(batch, outs[i]);
    check(static_cast<int>(s), outs);
    for (size_t r = 0; r < steps[s].size(); ++r) driver.append(steps[s][r].seq, argmax_row(outs[0], r, vocab));
  }
}

class SlidingWindow : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = windowed_demo_model(kWindow).release();
    unwindowed_ = windowed_demo_model(0).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete unwindowed_;
    model_ = unwindowed_ = nullptr;
  }
  static std::unique_ptr<Backend> cpu(const LoadedModel& model) {
    CpuBackendOptions o;
    o.kv_cache_blocks = kBlocks;
    o.block_size = kBlockSize;
    return make_cpu_backend(model, o);
  }
  static std::unique_ptr<CudaBackend> gpu(bool graphs) {
    CudaBackendOptions o;
    o.kv_cache_blocks = kBlocks;
    o.block_size = kBlockSize;
    o.max_num_batched_tokens = 256;
    o.max_num_seqs = 16;
    o.cuda_graphs = graphs;
    return make_cuda_backend(*model_, o);
  }
  static LoadedModel* model_;
  static LoadedModel* unwindowed_;
};

LoadedModel* SlidingWindow::model_ = nullptr;
LoadedModel* SlidingWindow::unwindowed_ = nullptr;

// The test's premise, on the CPU: the window changes the logits once contexts
// pass it (by far more than the CUDA tolerance), and not before.
TEST_F(SlidingWindow, TheWindowChangesTheCpuLogitsPastIt) {
  ASSERT_EQ(model_->config().sliding_window, kWindow);
  ASSERT_FALSE(unwindowed_->config().sliding_window.has_value());
  auto windowed = cpu(*model_), plain = cpu(*unwindowed_);
  const int vocab = model_->config().vocab_size;
  std::mt19937 rng(5);
  double past = INFINITY;
  run_windowed_schedule({windowed.get(), plain.get()}, vocab, rng, [&](int step, const auto& outs) {
    // Row 2 (sequence c) has 20 and 21 keys in the first two steps: inside the window.
    if (step < 2) {
      const std::vector<float> w(outs[0].begin() + 2 * vocab, outs[0].begin() + 3 * vocab);
      const std::vector<float> p(outs[1].begin() + 2 * vocab, outs[1].begin() + 3 * vocab);
      EXPECT_LT(rel_error(w, p), 1e-5) << "step " << step;
    } else {
      past = std::min(past, rel_error(outs[0], outs[1]));
    }
  });
  std::printf("[compare] sliding window %d: windowed vs plain cpu logits past the window: min rel_error %.3e\n",
              kWindow, past);
  EXPECT_GT(past, 0.05);
}

TEST_F(SlidingWindow, CudaLogitsMatchTheCpuBackendPastTheWindow) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  auto reference = cpu(*model_);
  auto eager = gpu(false), graphs = gpu(true);
  EXPECT_EQ(eager->max_context(), 0);  // the window is computed, not a context cap
  const int vocab = model_->config().vocab_size;
  std::mt19937 rng(std::random_device{}());
  double worst = 0;
  run_windowed_schedule({reference.get(), eager.get(), graphs.get()}, vocab, rng, [&](int step, const auto& outs) {
    for (size_t i = 1; i < outs.size(); ++i) {
      const double e = rel_error(outs[i], outs[0]);
      worst = std::max(worst, e);
      EXPECT_LT(e, 1e-2) << (i == 1 ? "eager" : "graphs") << " step " << step;
    }
  });
  EXPECT_GT(graphs->captured_graphs(), 0);
  std::printf("[compare] sliding window %d: cuda (eager, graphs) vs cpu logits over 42 steps: max rel_error %.3e\n",
              kWindow, worst);
}

}  // namespace
}  // namespace nibble::test
