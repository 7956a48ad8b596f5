#pragma once
// One forward step's work, flattened over all scheduled sequences. There is no
// prefill or decode mode: each sequence contributes the tokens scheduled for it
// this step (a prompt chunk, or one decode token) at their positions.
#include <cstdint>
#include <vector>

namespace nibble {

struct Batch {
  // Flattened tokens of every sequence, sequence after sequence.
  std::vector<int32_t> token_ids;  // [num_tokens]
  std::vector<int32_t> positions;  // [num_tokens], position of each token in its sequence
  // Sequence s owns tokens [query_start[s], query_start[s+1]).
  std::vector<int32_t> query_start;  // [num_seqs + 1]
  // Context length of sequence s after this step: cached tokens + new tokens.
  std::vector<int32_t> seq_lens;  // [num_seqs]
  // Paged KV block tables in CSR form (FlashInfer's paged_kv_t): the blocks of
  // sequence s are kv_indices[kv_indptr[s] .. kv_indptr[s+1]), in order; its last
  // block holds kv_last_block_len[s] valid tokens (1..block_size). New tokens'
  // K/V are written into these blocks at their positions.
  std::vector<int32_t> kv_indptr;          // [num_seqs + 1]
  std::vector<int32_t> kv_indices;         // [total blocks]
  std::vector<int32_t> kv_last_block_len;  // [num_seqs]
  // Flat token indices whose logits the step must return, in output order
  // (usually the last token of each sequence that samples this step).
  std::vector<int32_t> logits_indices;

  int num_seqs() const { return static_cast<int>(seq_lens.size()); }
  int num_tokens() const { return static_cast<int>(token_ids.size()); }
};

// Builds the CSR block-table fields from per-sequence block lists; a helper for
// the scheduler and tests. block_tables[s] lists the blocks of sequence s.
void set_block_tables(Batch& batch, const std::vector<std::vector<int32_t>>& block_tables, int block_size);

}  // namespace nibble
