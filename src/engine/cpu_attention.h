#pragma once
// Causal GQA attention over the paged KV cache for every new token of a batch.
// The new tokens' K/V must already be in the cache; token t of sequence s at
// position p attends to positions [0, p] of s, or with a sliding window W to
// (p - W, p] (transformers' sliding_window mask: kv_idx > q_idx - W).
#include <vector>

#include "cpu_paged_kv.h"
#include "nibble/core/thread_pool.h"
#include "nibble/engine/batch.h"

namespace nibble {

// q: [num_tokens][q_heads][head_dim]; out: the same shape. token_seq[t] is the
// sequence of token t; sliding_window 0 means none. The batch has been validated.
void cpu_paged_attention(const float* q, int q_heads, const CpuPagedKv& kv, int layer, const Batch& batch,
                         const std::vector<int>& token_seq, int sliding_window, float* out, ThreadPool& pool);

}  // namespace nibble
