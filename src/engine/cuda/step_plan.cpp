#include "step_plan.h"

#include <string>

#include "attention/attention_plan.h"
#include "nibble/core/error.h"

namespace nibble::cuda {

bool is_decode_step(const Batch& batch) {
  if (batch.num_tokens() != batch.num_seqs()) return false;
  for (int s = 0; s < batch.num_seqs(); ++s)
    if (batch.query_start[s + 1] - batch.query_start[s] != 1) return false;
  return true;
}

StepPlan make_step_plan(const Batch& batch, int block_size, int tile_tokens, int pad_to) {
  StepPlan p;
  const int S = batch.num_seqs(), T = batch.num_tokens(), L = static_cast<int>(batch.logits_indices.size());
  p.num_seqs = pad_to > 0 ? pad_to : S;
  p.num_tokens = pad_to > 0 ? pad_to : T;
  p.num_logits = pad_to > 0 ? pad_to : L;
  p.token_ids = batch.token_ids;
  p.positions = batch.positions;
  p.query_start = batch.query_start;
  p.seq_lens = batch.seq_lens;
  p.kv_indptr = batch.kv_indptr;
  p.kv_indices = batch.kv_indices;
  p.logits_indices = batch.logits_indices;
  p.slot_mapping.resize(T);
  for (int s = 0; s < S; ++s)
    for (int t = batch.query_start[s]; t < batch.query_start[s + 1]; ++t) {
      const int pos = batch.positions[t];
      p.slot_mapping[t] = batch.kv_indices[batch.kv_indptr[s] + pos / block_size] * block_size + pos % block_size;
    }
  auto work = kernels::plan_attention_work(batch.query_start, tile_tokens);
  p.work_seq = std::move(work.seq);
  p.work_qoff = std::move(work.qoff);
  if (pad_to > 0) {
    p.token_ids.resize(pad_to, 0);
    p.positions.resize(pad_to, 0);
    p.slot_mapping.resize(pad_to, -1);
    p.query_start.resize(pad_to + 1, T);
    p.seq_lens.resize(pad_to, 0);
    p.kv_indptr.resize(pad_to + 1, batch.kv_indptr.back());
    p.logits_indices.resize(pad_to, 0);
    // One item per sequence; the padded ones find no queries and return.
    p.work_seq.resize(pad_to);
    p.work_qoff.assign(pad_to, 0);
    for (int s = 0; s < pad_to; ++s) p.work_seq[s] = s;
  }
  p.num_work = static_cast<int>(p.work_seq.size());
  return p;
}

void check_step_capacity(const Batch& batch, const WorkspaceLimits& limits, int tile_tokens) {
  auto over = [](const char* what, size_t got, int limit, const char* option) {
    return std::string("cuda backend: the batch has ") + std::to_string(got) + " " + what + ", more than " +
           std::to_string(limit) + " (" + option + ")";
  };
  NIBBLE_CHECK(batch.num_tokens() <= limits.max_tokens,
               over("tokens", batch.num_tokens(), limits.max_tokens, "max_num_batched_tokens"));
  NIBBLE_CHECK(batch.num_seqs() <= limits.max_seqs, over("sequences", batch.num_seqs(), limits.max_seqs, "max_num_seqs"));
  NIBBLE_CHECK(static_cast<int>(batch.logits_indices.size()) <= limits.max_seqs,
               over("logits rows", batch.logits_indices.size(), limits.max_seqs, "max_num_seqs"));
  NIBBLE_CHECK(static_cast<int>(batch.kv_indices.size()) <= limits.max_kv_indices,
               over("block-table entries", batch.kv_indices.size(), limits.max_kv_indices,
                    "max_num_seqs x max_position_embeddings / block_size"));
  size_t work = 0;
  for (int s = 0; s < batch.num_seqs(); ++s)
    work += (batch.query_start[s + 1] - batch.query_start[s] + tile_tokens - 1) / tile_tokens;
  NIBBLE_CHECK(work <= static_cast<size_t>(limits.max_work), over("attention tiles", work, limits.max_work, "internal"));
}

}  // namespace nibble::cuda
