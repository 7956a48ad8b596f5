// Consistency of the CPU backend on random in-memory models: batching, paging,
// chunking, thread count and act-order must not change the logits. Batching,
// paging and chunking are bit-exact: a token's sums are ordered the same way
// whatever else shares the step (vLLM calls this batch invariance).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "nibble/core/error.h"
#include "nibble/engine/cpu_backend.h"
#include "random_model.h"
#include "sequence_driver.h"

namespace nibble::test {
namespace {

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = dist(rng);
  return t;
}

std::vector<int32_t> sequential_blocks(int n) {
  std::vector<int32_t> b(n);
  std::iota(b.begin(), b.end(), 0);
  return b;
}

std::vector<int32_t> shuffled_blocks(int n, uint32_t seed) {
  auto b = sequential_blocks(n);
  std::shuffle(b.begin(), b.end(), std::mt19937(seed));
  return b;
}

QuantConfig gptq(int bits, int group_size, bool desc_act, bool sym,
                 QuantConfig::Format format = QuantConfig::Format::Gptq) {
  QuantConfig q;
  q.quantized = true;
  q.bits = bits;
  q.group_size = group_size;
  q.desc_act = desc_act;
  q.sym = sym;
  q.format = format;
  return q;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol, const std::string& where) {
  double err = max_relative_error(a, b);
  EXPECT_LE(err, tol) << where;
}

struct Variant {
  std::string name;
  RandomModelSpec spec;
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

std::vector<Variant> variants() {
  std::vector<Variant> v;
  RandomModelSpec llama;
  v.push_back({"llama_f32", llama});
  RandomModelSpec mistral = llama;
  mistral.architecture = Architecture::Mistral;
  mistral.dtype = DType::F16;
  v.push_back({"mistral_f16", mistral});
  RandomModelSpec qwen = llama;
  qwen.architecture = Architecture::Qwen2;
  qwen.dtype = DType::BF16;
  qwen.tie_word_embeddings = true;
  v.push_back({"qwen2_bf16_tied", qwen});
  RandomModelSpec q4 = llama;
  q4.quant = gptq(4, 32, false, true);
  q4.rope_scaling.type = RopeScaling::Type::Llama3;
  q4.rope_scaling.factor = 8.0;
  q4.rope_scaling.original_max_position_embeddings = 64;
  v.push_back({"llama_gptq4_llama3rope", q4});
  RandomModelSpec q4act = qwen;
  q4act.quant = gptq(4, 16, true, false);
  v.push_back({"qwen2_gptq4_actorder_asym", q4act});
  RandomModelSpec q8 = mistral;
  q8.quant = gptq(8, -1, false, false, QuantConfig::Format::GptqV2);
  q8.num_kv_heads = 1;
  v.push_back({"mistral_gptq8_v2_mqa", q8});
  return v;
}

class CpuBackendVariants : public ::testing::TestWithParam<Variant> {};

TEST_P(CpuBackendVariants, BatchedEqualsSingleSequence) {
  auto model = make_random_model(GetParam().spec);
  const int vocab = model->config().vocab_size;
  const std::vector<int> lengths = {13, 29, 7, 40};

  // Reference: each sequence alone, one-shot prefill.
  std::vector<std::vector<std::vector<float>>> single(lengths.size());
  {
    auto backend = make_cpu_backend(*model, {.kv_cache_blocks = 16, .block_size = 4});
    for (size_t i = 0; i < lengths.size(); ++i) {
      SequenceDriver driver(*backend, sequential_blocks(16));
      int s = driver.add(random_tokens(lengths[i], vocab, 100 + i));
      driver.run_to_end(s, lengths[i]);
      for (int p = 0; p < lengths[i]; ++p) single[i].push_back(driver.logits(s, p));
    }
  }

  // Batched: chunked prefills and decode tokens mixed in the same steps.
  auto backend = make_cpu_backend(*model, {.kv_cache_blocks = 64, .block_size = 4});
  SequenceDriver driver(*backend, shuffled_blocks(64, 7));
  for (size_t i = 0; i < lengths.size(); ++i) driver.add(random_tokens(lengths[i], vocab, 100 + i));
  driver.step({{0, 5}, {1, 29}, {2, 3}});
  driver.step({{0, 8}, {1, 0}, {2, 1}, {3, 17}});
  driver.step({{2, 1}, {3, 1}});
  driver.step({{3, 9}, {2, 1}});
  driver.step({{2, 1}, {3, 13}});
  for (size_t i = 0; i < lengths.size(); ++i) {
    ASSERT_EQ(driver.computed(i), lengths[i]) << "sequence " << i;
    for (int p = 0; p < lengths[i]; ++p)
      expect_close(driver.logits(i, p), single[i][p], 0.0, "sequence " + std::to_string(i) + " position " + std::to_string(p));
  }
}

TEST_P(CpuBackendVariants, PagedShuffledEqualsSequentialAndChunkedEqualsOneShot) {
  auto model = make_random_model(GetParam().spec);
  const auto tokens = random_tokens(50, model->config().vocab_size, 5);
  auto one_shot = make_cpu_backend(*model, {.kv_cache_blocks = 8, .block_size = 8});
  SequenceDriver contiguous(*one_shot, sequential_blocks(8));
  contiguous.add(tokens);
  contiguous.run_to_end(0, 50);

  auto paged = make_cpu_backend(*model, {.kv_cache_blocks = 40, .block_size = 2});
  SequenceDriver chunked(*paged, shuffled_blocks(40, 11));
  chunked.add(tokens);
  chunked.step({{0, 11}});
  chunked.run_to_end(0, 1);  // the rest one token at a time, as decode does
  for (int p = 0; p < 50; ++p)
    expect_close(chunked.logits(0, p), contiguous.logits(0, p), 0.0, "position " + std::to_string(p));
}

TEST_P(CpuBackendVariants, ThreadCountDoesNotChangeLogits) {
  auto model = make_random_model(GetParam().spec);
  const auto tokens = random_tokens(21, model->config().vocab_size, 9);
  std::vector<std::vector<float>> ref;
  for (int threads : {1, 2, 3}) {
    auto backend = make_cpu_backend(*model, {.kv_cache_blocks = 8, .block_size = 16, .threads = threads});
    SequenceDriver driver(*backend, sequential_blocks(8));
    driver.add(tokens);
    driver.run_to_end(0, 21);
    for (int p = 0; p < 21; ++p) {
      if (threads == 1)
        ref.push_back(driver.logits(0, p));
      else
        expect_close(driver.logits(0, p), ref[p], 1e-5, "threads " + std::to_string(threads));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CpuBackendVariants, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param.name; });

TEST(CpuBackend, ActOrderEqualsDequantizedDense) {
  for (int bits : {4, 8}) {
    RandomModelSpec spec;
    spec.quant = gptq(bits, 16, true, bits == 4);
    auto quantized = make_random_model(spec);
    auto dense = dequantized_copy(*quantized);
    const auto tokens = random_tokens(19, spec.vocab_size, 3);
    auto run = [&](const LoadedModel& m) {
      auto backend = make_cpu_backend(m, {.kv_cache_blocks = 4, .block_size = 16});
      SequenceDriver driver(*backend, sequential_blocks(4));
      driver.add(tokens);
      driver.step({{0, 12}});
      driver.run_to_end(0, 1);
      std::vector<std::vector<float>> out;
      for (int p = 0; p < 19; ++p) out.push_back(driver.logits(0, p));
      return out;
    };
    auto a = run(*quantized), b = run(*dense);
    for (int p = 0; p < 19; ++p) expect_close(a[p], b[p], 1e-5, "bits " + std::to_string(bits));
  }
}

TEST(CpuBackend, LogitsAreFiniteAndVary) {
  RandomModelSpec spec;
  auto model = make_random_model(spec);
  auto backend = make_cpu_backend(*model, {.kv_cache_blocks = 4});
  SequenceDriver driver(*backend, sequential_blocks(4));
  driver.add(random_tokens(6, spec.vocab_size, 1));
  driver.run_to_end(0, 6);
  for (int p = 0; p < 6; ++p) {
    const auto& l = driver.logits(0, p);
    ASSERT_EQ(static_cast<int>(l.size()), spec.vocab_size);
    for (float x : l) ASSERT_TRUE(std::isfinite(x));
    EXPECT_GT(*std::max_element(l.begin(), l.end()) - *std::min_element(l.begin(), l.end()), 0.1f);
  }
  EXPECT_GT(max_relative_error(driver.logits(0, 0), driver.logits(0, 5)), 1e-3);
}

TEST(CpuBackend, KvPoolSizeFromOptions) {
  RandomModelSpec spec;
  auto model = make_random_model(spec);
  EXPECT_EQ(make_cpu_backend(*model, {.kv_cache_blocks = 7})->kv_cache_shape().num_blocks, 7);
  auto from_tokens = make_cpu_backend(*model, {.kv_cache_tokens = 100, .block_size = 32});
  EXPECT_EQ(from_tokens->kv_cache_shape().num_blocks, 4);
  EXPECT_EQ(from_tokens->kv_cache_shape().block_size, 32);
  EXPECT_EQ(make_cpu_backend(*model)->kv_cache_shape().num_blocks, 4096 / 16);  // max_position_embeddings
  EXPECT_EQ(make_cpu_backend(*model)->name(), "cpu");
  EXPECT_THROW(make_cpu_backend(*model, {.block_size = 0}), Error);
  EXPECT_THROW(make_cpu_backend(*model, {.threads = -1}), Error);
}

TEST(CpuBackend, RejectsImpossibleKvPool) {
  RandomModelSpec spec;
  auto model = make_random_model(spec);
  EXPECT_THROW(make_cpu_backend(*model, {.kv_cache_blocks = 2000000000, .block_size = 1 << 20}), Error);
}

TEST(CpuBackend, EmptyBatchesAndNoLogitRows) {
  RandomModelSpec spec;
  auto model = make_random_model(spec);
  auto backend = make_cpu_backend(*model, {.kv_cache_blocks = 4});
  std::vector<float> logits(5, 1.0f);
  Batch empty;
  empty.query_start = {0};
  empty.kv_indptr = {0};
  backend->forward(empty, logits);
  EXPECT_TRUE(logits.empty());

  // A prefill chunk that samples nothing still fills the KV cache: the next
  // step's logits match a one-shot run.
  auto one_shot = make_cpu_backend(*model, {.kv_cache_blocks = 4});
  SequenceDriver reference(*one_shot, {0, 1});
  const auto tokens = random_tokens(20, spec.vocab_size, 4);
  reference.add(tokens);
  reference.step({{0, 20}});
  Batch chunk;
  chunk.token_ids.assign(tokens.begin(), tokens.begin() + 19);
  for (int p = 0; p < 19; ++p) chunk.positions.push_back(p);
  chunk.query_start = {0, 19};
  chunk.seq_lens = {19};
  set_block_tables(chunk, {{2, 3}}, 16);
  backend->forward(chunk, logits);
  EXPECT_TRUE(logits.empty());
  Batch last;
  last.token_ids = {tokens[19]};
  last.positions = {19};
  last.query_start = {0, 1};
  last.seq_lens = {20};
  set_block_tables(last, {{2, 3}}, 16);
  last.logits_indices = {0};
  backend->forward(last, logits);
  EXPECT_EQ(max_relative_error(logits, reference.logits(0, 19)), 0.0);
}

TEST(CpuBackend, RejectsInconsistentWeights) {
  RandomModelSpec spec;
  auto model = make_random_model(spec);
  auto broken = dequantized_copy(*model);
  auto& w = const_cast<ModelWeights&>(broken->weights());
  w.layers[1].k_proj.weight.shape = {8, 64};
  try {
    make_cpu_backend(*broken);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("k_proj"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace nibble::test
