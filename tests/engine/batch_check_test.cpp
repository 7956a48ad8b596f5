// Malformed batches are rejected with nibble::Error before any memory is touched.
#include <gtest/gtest.h>

#include <functional>

#include "nibble/core/error.h"
#include "nibble/engine/batch_check.h"
#include "nibble/engine/cpu_backend.h"
#include "random_model.h"

namespace nibble {
namespace {

const KvCacheShape kPool{8, 4};
constexpr int kVocab = 50;

// Two sequences: one with 6 cached tokens decoding 1, one prefilling 3.
Batch valid_batch() {
  Batch b;
  b.token_ids = {5, 1, 2, 3};
  b.positions = {6, 0, 1, 2};
  b.query_start = {0, 1, 4};
  b.seq_lens = {7, 3};
  set_block_tables(b, {{4, 2}, {7}}, kPool.block_size);
  b.logits_indices = {0, 3};
  return b;
}

void expect_rejected(const std::function<void(Batch&)>& mutate, const std::string& needle) {
  Batch b = valid_batch();
  mutate(b);
  try {
    validate_batch(b, kVocab, kPool);
    FAIL() << "accepted a batch that should fail with '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(BatchCheck, AcceptsValidBatches) {
  EXPECT_NO_THROW(validate_batch(valid_batch(), kVocab, kPool));
  // Two sequences share prefix block 4 (read only); each writes its own last block.
  Batch shared_prefix = valid_batch();
  shared_prefix.token_ids = {5, 1};
  shared_prefix.positions = {6, 5};
  shared_prefix.query_start = {0, 1, 2};
  shared_prefix.seq_lens = {7, 6};
  set_block_tables(shared_prefix, {{4, 2}, {4, 7}}, kPool.block_size);
  shared_prefix.logits_indices = {0, 1};
  EXPECT_NO_THROW(validate_batch(shared_prefix, kVocab, kPool));
  Batch empty;
  empty.query_start = {0};
  empty.kv_indptr = {0};
  EXPECT_NO_THROW(validate_batch(empty, kVocab, kPool));
}

TEST(BatchCheck, RejectsMalformedBatches) {
  expect_rejected([](Batch& b) { b.token_ids[2] = kVocab; }, "token_ids[2]");
  expect_rejected([](Batch& b) { b.token_ids[0] = -1; }, "token_ids[0]");
  expect_rejected([](Batch& b) { b.positions.pop_back(); }, "positions");
  expect_rejected([](Batch& b) { b.positions[0] = 5; }, "positions[0]");
  expect_rejected([](Batch& b) { b.positions[3] = 3; }, "positions[3]");
  expect_rejected([](Batch& b) { b.query_start = {0, 1}; }, "query_start");
  expect_rejected([](Batch& b) { b.query_start = {0, 3, 2}; }, "query_start");
  expect_rejected([](Batch& b) { b.query_start = {1, 2, 4}; }, "query_start[0]");
  expect_rejected([](Batch& b) { b.seq_lens[1] = 2; }, "seq_lens[1]");
  expect_rejected([](Batch& b) { b.kv_indices[1] = kPool.num_blocks; }, "kv_indices[1]");
  expect_rejected([](Batch& b) { b.kv_indices[0] = -3; }, "kv_indices[0]");
  expect_rejected([](Batch& b) { b.kv_last_block_len[0] = 4; }, "block table of sequence 0");
  expect_rejected([](Batch& b) { b.kv_last_block_len.pop_back(); }, "kv_last_block_len");
  expect_rejected(
      [](Batch& b) {  // the first sequence lost a block
        b.kv_indices.erase(b.kv_indices.begin() + 1);
        b.kv_indptr = {0, 1, 2};
      },
      "block table of sequence 0");
  expect_rejected([](Batch& b) { b.kv_indptr = {0, 2, 4}; }, "kv_indptr");
  expect_rejected([](Batch& b) { b.kv_indices[2] = 2; }, "block 2 receives new tokens of sequence 0");
  expect_rejected(
      [](Batch& b) {  // one sequence whose two written blocks are the same
        b.token_ids = {5, 6};
        b.positions = {3, 4};
        b.query_start = {0, 2};
        b.seq_lens = {5};
        set_block_tables(b, {{3, 3}}, kPool.block_size);
        b.logits_indices = {1};
      },
      "block 3 receives new tokens");
  expect_rejected([](Batch& b) { b.logits_indices.push_back(4); }, "logits_indices[2]");
  expect_rejected([](Batch& b) { b.logits_indices[0] = -1; }, "logits_indices[0]");
}

TEST(BatchCheck, BackendRejectsMalformedBatch) {
  test::RandomModelSpec spec;
  spec.vocab_size = kVocab;
  auto model = test::make_random_model(spec);
  auto backend = make_cpu_backend(*model, {.kv_cache_blocks = kPool.num_blocks, .block_size = kPool.block_size});
  std::vector<float> logits;
  Batch ok = valid_batch();
  // The first sequence claims 6 cached tokens it never computed; the backend
  // cannot know, but the batch itself is well-formed and must run.
  EXPECT_NO_THROW(backend->forward(ok, logits));
  EXPECT_EQ(logits.size(), 2u * kVocab);
  Batch bad = valid_batch();
  bad.kv_indices[2] = 100;
  EXPECT_THROW(backend->forward(bad, logits), Error);
}

}  // namespace
}  // namespace nibble
