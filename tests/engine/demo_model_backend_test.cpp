// The CPU backend on demo model folders written by the model module and loaded
// through load_model, as the server will run it.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>
#include <random>
#include <unistd.h>

#include "nibble/engine/cpu_backend.h"
#include "nibble/model/demo_model.h"
#include "nibble/model/loader.h"
#include "sequence_driver.h"

namespace nibble::test {
namespace {

namespace fs = std::filesystem;

// A fresh folder under the build tree, removed at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(fs::path(NIBBLE_BINARY_DIR) / "engine_test_models" / (name + "_" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<int32_t> prompt(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

std::vector<int32_t> shuffled_blocks(int n, uint32_t seed) {
  std::vector<int32_t> b(n);
  std::iota(b.begin(), b.end(), 0);
  std::shuffle(b.begin(), b.end(), std::mt19937(seed));
  return b;
}

struct ArchCase {
  std::string name;
  Architecture architecture;
};

class DemoModelArchitectures : public ::testing::TestWithParam<ArchCase> {};

TEST_P(DemoModelArchitectures, BatchedEqualsSingleSequence) {
  TempDir dir("batched_" + GetParam().name);
  DemoModelOptions o;
  o.preset = "tiny";
  o.architecture = GetParam().architecture;
  o.seed = 11;
  write_demo_model_weights(dir.path(), o);
  auto model = load_model(dir.path());
  const int vocab = model->config().vocab_size;
  const std::vector<int> lengths = {23, 9, 40};

  std::vector<std::vector<std::vector<float>>> single(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    auto backend = make_cpu_backend(*model, {.kv_cache_blocks = 4});
    SequenceDriver driver(*backend, {0, 1, 2, 3});
    driver.add(prompt(lengths[i], vocab, 50 + i));
    driver.run_to_end(0, lengths[i]);
    for (int p = 0; p < lengths[i]; ++p) single[i].push_back(driver.logits(0, p));
  }

  auto backend = make_cpu_backend(*model, {.kv_cache_blocks = 32, .block_size = 4});
  SequenceDriver driver(*backend, shuffled_blocks(32, 3));
  for (size_t i = 0; i < lengths.size(); ++i) driver.add(prompt(lengths[i], vocab, 50 + i));
  driver.step({{0, 10}, {1, 4}});
  driver.step({{0, 13}, {1, 1}, {2, 20}});  // a prefill chunk, a decode token, a new prompt
  driver.step({{1, 1}, {2, 1}});
  driver.step({{2, 19}, {1, 1}});
  driver.step({{1, 2}});
  for (size_t i = 0; i < lengths.size(); ++i) {
    ASSERT_EQ(driver.computed(i), lengths[i]);
    for (int p = 0; p < lengths[i]; ++p)
      EXPECT_LE(max_relative_error(driver.logits(i, p), single[i][p]), 0.0) << "sequence " << i << " position " << p;
  }
}

TEST_P(DemoModelArchitectures, ActOrderEqualsDequantizedCopy) {
  TempDir dir("actorder_" + GetParam().name);
  DemoModelOptions o;
  o.preset = "small";  // act-order with a random g_idx permutation
  o.architecture = GetParam().architecture;
  o.seed = 5;
  write_demo_model_weights(dir.path() / "gptq", o);
  write_dequantized_copy(dir.path() / "gptq", dir.path() / "dense");
  auto quantized = load_model(dir.path() / "gptq");
  auto dense = load_model(dir.path() / "dense");
  ASSERT_TRUE(quantized->config().quant.quantized);
  ASSERT_TRUE(quantized->config().quant.desc_act);
  ASSERT_FALSE(dense->config().quant.quantized);

  const auto tokens = prompt(24, quantized->config().vocab_size, 8);
  auto run = [&](const LoadedModel& m) {
    auto backend = make_cpu_backend(m, {.kv_cache_blocks = 8, .block_size = 4});
    SequenceDriver driver(*backend, shuffled_blocks(8, 1));
    driver.add(tokens);
    driver.step({{0, 17}});
    driver.run_to_end(0, 1);
    std::vector<std::vector<float>> out;
    for (int p = 0; p < 24; ++p) out.push_back(driver.logits(0, p));
    return out;
  };
  const auto a = run(*quantized), b = run(*dense);
  for (int p = 0; p < 24; ++p) EXPECT_LE(max_relative_error(a[p], b[p]), 1e-5) << "position " << p;
}

TEST(DemoModel, LongPrefillEqualsTokenByToken) {
  TempDir dir("long_prefill");
  DemoModelOptions o;
  o.preset = "tiny";
  o.seed = 2;
  write_demo_model_weights(dir.path(), o);
  auto model = load_model(dir.path());
  const auto tokens = prompt(300, model->config().vocab_size, 4);
  auto one_step = make_cpu_backend(*model, {.kv_cache_tokens = 320});
  SequenceDriver whole(*one_step, shuffled_blocks(20, 9));
  whole.add(tokens);
  whole.step({{0, 300}});
  auto stepwise = make_cpu_backend(*model, {.kv_cache_tokens = 320});
  SequenceDriver decode(*stepwise, shuffled_blocks(20, 10));
  decode.add(tokens);
  decode.run_to_end(0, 1);
  for (int p = 0; p < 300; ++p)
    ASSERT_EQ(max_relative_error(whole.logits(0, p), decode.logits(0, p)), 0.0) << "position " << p;
}

INSTANTIATE_TEST_SUITE_P(Architectures, DemoModelArchitectures,
                         ::testing::Values(ArchCase{"llama", Architecture::Llama},
                                           ArchCase{"mistral", Architecture::Mistral},
                                           ArchCase{"qwen2", Architecture::Qwen2}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace nibble::test
