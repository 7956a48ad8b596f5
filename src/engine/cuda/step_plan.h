#pragma once
// Host-side preparation of one forward step: the metadata arrays the kernels
// read (slot mapping, attention work items, padded for a CUDA-graph bucket)
// and the capacity checks against the workspace limits.
#include <cstdint>
#include <vector>

#include "nibble/engine/batch.h"
#include "workspace.h"

namespace nibble::cuda {

struct StepPlan {
  int num_tokens = 0;  // including padding
  int num_seqs = 0;    // including padding
  int num_logits = 0;  // including padding
  int num_work = 0;
  int num_splits = 1;
  std::vector<int32_t> token_ids, positions, slot_mapping, query_start, seq_lens, kv_indptr, kv_indices, work_seq,
      work_qoff, logits_indices;
};

// True when every sequence adds exactly one token (a decode step).
bool is_decode_step(const Batch& batch);

// Builds the step's metadata. pad_to > 0 pads a decode step to that many
// sequences (one token each): padded tokens write no KV (slot -1), padded
// sequences have no queries, padded logits rows read token 0.
StepPlan make_step_plan(const Batch& batch, int block_size, int tile_tokens, int pad_to);

// Throws nibble::Error when the batch exceeds the workspace limits.
void check_step_capacity(const Batch& batch, const WorkspaceLimits& limits, int tile_tokens);

}  // namespace nibble::cuda
