#pragma once
// Attention over the paged KV cache, flash-attention style (online softmax, no
// score matrix in memory), one kernel for prefill chunks and decode tokens.
// Work is cut into items: (sequence, first query of a tile of that sequence's
// new tokens); each block takes one item, one KV head (all the query heads of its
// GQA group) and one split of the context (flash-decoding). The keys of the new
// tokens must already be in the cache (rope_and_write_kv first), except in a
// decode step whose RoPE and K/V write the decode kernel fuses (rope below).
// Query i of a sequence with q_len new tokens and seq_len context sits at position
// seq_len - q_len + i and sees keys 0 .. that position (causal), or with a
// sliding window W only the last W of them: keys (position - W, position], the
// CPU backend's and transformers' mask. Keys before an item's window are never
// read: each block's chunks start at the window of its first query.
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "attention/attention_plan.h"
#include "kv_cache/kv_cache.h"

namespace nibble::kernels {

struct PagedAttentionParams {
  const __half* q = nullptr;        // [tokens, num_heads, head_dim]
  const __half* k_cache = nullptr;  // [num_blocks, num_kv_heads, block_size, head_dim]
  const __half* v_cache = nullptr;
  __half* out = nullptr;            // [tokens, num_heads, head_dim]
  const int32_t* query_start = nullptr;  // [num_seqs + 1], flat token index of each sequence's first new token
  const int32_t* seq_lens = nullptr;     // [num_seqs]
  const int32_t* kv_indptr = nullptr;    // [num_seqs + 1]
  const int32_t* kv_indices = nullptr;   // block ids
  const int32_t* work_seq = nullptr;     // [num_work] sequence of each work item
  const int32_t* work_qoff = nullptr;    // [num_work] first query (within the sequence) of each item
  int num_work = 0;
  int num_tokens = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // multiple of 8, at most 256
  int block_size = 16;
  float scale = 1.0f;  // softmax scale, usually 1/sqrt(head_dim)
  int window = 0;      // sliding window (Mistral/Qwen2 sliding_window) in keys; 0: none
  // Every sequence has at most one new token (a decode step): a kernel that
  // spreads each block's keys over its warps runs instead, when head_dim is 32,
  // 64 or 128 and a GQA group has at most 8 heads.
  bool decode_only = false;
  // Prefill and mixed steps use a tensor-core (mma.sync) kernel when head_dim is
  // 64 or 128; false forces the CUDA-core kernel (benchmarks, tests).
  bool use_tensor_cores = true;
  // Flash-decoding: with num_splits > 1 each split writes a partial result into
  // split_out [num_splits, tokens, num_heads, head_dim] and split_lse
  // [num_splits, tokens, num_heads, 2] and a combine pass writes out.
  int num_splits = 1;
  float* split_out = nullptr;
  float* split_lse = nullptr;
  // Decode kernel only: [num_work * num_kv_heads] arrival counters, zero-filled
  // once (each launch leaves them zero). With them the last split block of each
  // (item, KV head) to finish merges the splits itself and no combine pass runs;
  // a sequence whose keys fit one split writes out directly. That merge runs in
  // one block per (item, KV head) and measured slower than the combine pass
  // beyond two splits (bench/NOTES.md), so the backend does not set it.
  int32_t* split_counters = nullptr;
  // Decode kernel only (see paged_attention_fuses_rope): with rope.q set, the
  // kernel does rope_and_write_kv's work for the step itself: it rotates each
  // token's query from rope.q (p.q and rope.q_out are not used), rotates its key
  // and writes it with its value into the cache slot rope.slot_mapping names
  // (which must be the slot of key seq_lens - 1, as the backend's step plan
  // makes it; negative: padding, not written), and attends to that key and
  // value from registers. rope's shapes must match these parameters' and its
  // caches be k_cache / v_cache.
  RopeKvParams rope;
  // Decode kernel only: blocks per thread-block cluster on sm_90 (each
  // (item, KV head, split) shared by that many blocks, merged through
  // distributed shared memory); 0: decode_attention_cluster's choice, 1: no
  // clusters; at most 16 (more than 8 where the device allows). Not with
  // split_counters. Other devices ignore it.
  int decode_cluster = 0;
  // Decode kernel only: launched with programmatic dependent launch, so it starts
  // while the kernel before it (the q/k/v product) ends: its metadata and first
  // K/V loads overlap that kernel's tail; it waits before reading q/k/v.
  bool programmatic_launch = false;
};

cudaError_t paged_attention(const PagedAttentionParams& p, cudaStream_t stream);

// Whether paged_attention takes RoPE and the K/V write of this step (p.rope):
// a decode step (decode_only) the decode kernel handles (head_dim 32, 64 or 128,
// at most 8 query heads per KV head). Otherwise run rope_and_write_kv first.
bool paged_attention_fuses_rope(const PagedAttentionParams& p);

}  // namespace nibble::kernels
