#include "nibble/engine/batch_check.h"

#include <algorithm>
#include <string>

#include "nibble/core/error.h"

namespace nibble {

namespace {

std::string at(const char* field, size_t i) { return std::string(field) + "[" + std::to_string(i) + "]"; }

void check_csr(const std::vector<int32_t>& indptr, const char* name, int num_seqs, size_t total) {
  NIBBLE_CHECK(indptr.size() == static_cast<size_t>(num_seqs) + 1,
               std::string("batch: ") + name + " has " + std::to_string(indptr.size()) + " entries, expected " +
                   std::to_string(num_seqs + 1));
  NIBBLE_CHECK(indptr[0] == 0, std::string("batch: ") + name + "[0] must be 0");
  for (int s = 0; s < num_seqs; ++s)
    NIBBLE_CHECK(indptr[s + 1] >= indptr[s], "batch: " + at(name, s + 1) + " decreases");
  NIBBLE_CHECK(static_cast<size_t>(indptr[num_seqs]) == total,
               std::string("batch: ") + name + " ends at " + std::to_string(indptr[num_seqs]) + " but there are " +
                   std::to_string(total) + " entries");
}

// Two sequences (or two table entries of one) writing new tokens into the same
// block would overwrite each other's K/V: a scheduler bug worth stopping at.
void check_write_conflicts(const Batch& b, int block_size) {
  struct Write {
    int32_t block, seq, index;
  };
  std::vector<Write> writes;
  for (int s = 0; s < b.num_seqs(); ++s) {
    const int new_tokens = b.query_start[s + 1] - b.query_start[s];
    if (new_tokens == 0) continue;
    const int first = (b.seq_lens[s] - new_tokens) / block_size, last = (b.seq_lens[s] - 1) / block_size;
    for (int i = first; i <= last; ++i) writes.push_back({b.kv_indices[b.kv_indptr[s] + i], s, i});
  }
  std::sort(writes.begin(), writes.end(), [](const Write& x, const Write& y) { return x.block < y.block; });
  for (size_t i = 1; i < writes.size(); ++i)
    NIBBLE_CHECK(writes[i].block != writes[i - 1].block,
                 "batch: block " + std::to_string(writes[i].block) + " receives new tokens of sequence " +
                     std::to_string(writes[i - 1].seq) + " (table entry " + std::to_string(writes[i - 1].index) +
                     ") and of sequence " + std::to_string(writes[i].seq) + " (table entry " +
                     std::to_string(writes[i].index) + ")");
}

}  // namespace

void validate_batch(const Batch& b, int vocab_size, const KvCacheShape& kv) {
  const int num_seqs = b.num_seqs();
  const size_t num_tokens = b.token_ids.size();
  NIBBLE_CHECK(b.positions.size() == num_tokens, "batch: positions has " + std::to_string(b.positions.size()) +
                                                     " entries for " + std::to_string(num_tokens) + " tokens");
  for (size_t t = 0; t < num_tokens; ++t)
    NIBBLE_CHECK(b.token_ids[t] >= 0 && b.token_ids[t] < vocab_size,
                 "batch: " + at("token_ids", t) + " = " + std::to_string(b.token_ids[t]) + " is outside the vocabulary of " +
                     std::to_string(vocab_size));
  check_csr(b.query_start, "query_start", num_seqs, num_tokens);
  check_csr(b.kv_indptr, "kv_indptr", num_seqs, b.kv_indices.size());
  NIBBLE_CHECK(b.kv_last_block_len.size() == static_cast<size_t>(num_seqs),
               "batch: kv_last_block_len has " + std::to_string(b.kv_last_block_len.size()) + " entries for " +
                   std::to_string(num_seqs) + " sequences");

  for (int s = 0; s < num_seqs; ++s) {
    const int q0 = b.query_start[s], q1 = b.query_start[s + 1];
    const int new_tokens = q1 - q0;
    const int len = b.seq_lens[s];
    NIBBLE_CHECK(len >= new_tokens, "batch: " + at("seq_lens", s) + " = " + std::to_string(len) + " is shorter than its " +
                                        std::to_string(new_tokens) + " new tokens");
    for (int j = 0; j < new_tokens; ++j)
      NIBBLE_CHECK(b.positions[q0 + j] == len - new_tokens + j,
                   "batch: " + at("positions", q0 + j) + " = " + std::to_string(b.positions[q0 + j]) + ", expected " +
                       std::to_string(len - new_tokens + j) + " (sequence " + std::to_string(s) + " has length " +
                       std::to_string(len) + ")");
    const int blocks = b.kv_indptr[s + 1] - b.kv_indptr[s];
    const int last = b.kv_last_block_len[s];
    if (len == 0) {
      NIBBLE_CHECK(blocks == 0, "batch: sequence " + std::to_string(s) + " is empty but has blocks");
      continue;
    }
    NIBBLE_CHECK(blocks >= 1 && last >= 1 && last <= kv.block_size &&
                     static_cast<int64_t>(blocks - 1) * kv.block_size + last == len,
                 "batch: the block table of sequence " + std::to_string(s) + " (" + std::to_string(blocks) +
                     " blocks, last holding " + std::to_string(last) + ") does not cover its " + std::to_string(len) +
                     " tokens with block_size " + std::to_string(kv.block_size));
  }
  for (size_t i = 0; i < b.kv_indices.size(); ++i)
    NIBBLE_CHECK(b.kv_indices[i] >= 0 && b.kv_indices[i] < kv.num_blocks,
                 "batch: " + at("kv_indices", i) + " = " + std::to_string(b.kv_indices[i]) + " is outside the pool of " +
                     std::to_string(kv.num_blocks) + " blocks");
  check_write_conflicts(b, kv.block_size);
  for (size_t i = 0; i < b.logits_indices.size(); ++i)
    NIBBLE_CHECK(b.logits_indices[i] >= 0 && static_cast<size_t>(b.logits_indices[i]) < num_tokens,
                 "batch: " + at("logits_indices", i) + " = " + std::to_string(b.logits_indices[i]) +
                     " is not a token of the batch");
}

}  // namespace nibble
