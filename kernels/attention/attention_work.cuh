#pragma once
// The slice of paged attention one thread block computes, shared by the CUDA-core
// and tensor-core kernels: up to `rows` query rows (tokens x heads of one GQA
// group) of one work item, against its split of the `chunk`-key chunks. The
// chunks start at k_begin, the first key the item's first query sees (0 without
// a sliding window), so keys before the window are never loaded.
#include "attention/attention.h"

namespace nibble::kernels {

struct BlockWork {
  int seq;        // the sequence of the work item
  int q_first;    // flat index of the sequence's first new token
  int q_len;      // new tokens of the sequence this step
  int qoff;       // first new token (within the sequence) of this item
  int group;      // query heads per KV head
  int n_tok;      // tokens of this item (<= 0: nothing to do)
  int n_rows;     // n_tok * group
  int ctx_start;  // position of the sequence's first new token
  int n_keys;     // keys the item's last token sees (causal): the item reads keys [k_begin, n_keys)
  int k_begin;    // first key the item's first token sees (its window's start)
  int c_begin;    // this split's chunks: [c_begin, c_end), chunk c = keys k_begin + c * chunk ...
  int c_end;
};

__device__ __forceinline__ BlockWork block_work(const PagedAttentionParams& p, int rows, int chunk,
                                                        int item, int split) {
  BlockWork w;
  w.seq = p.work_seq[item];
  w.q_first = p.query_start[w.seq];
  w.q_len = p.query_start[w.seq + 1] - w.q_first;
  w.qoff = p.work_qoff[item];
  w.group = p.num_heads / p.num_kv_heads;
  w.n_tok = min(rows / w.group, w.q_len - w.qoff);
  w.n_rows = w.n_tok * w.group;
  w.ctx_start = p.seq_lens[w.seq] - w.q_len;
  w.n_keys = w.ctx_start + w.qoff + w.n_tok;
  w.k_begin = p.window > 0 ? max(0, w.ctx_start + w.qoff + 1 - p.window) : 0;
  const int n_chunks = (w.n_keys - w.k_begin + chunk - 1) / chunk;
  const int per_split = (n_chunks + p.num_splits - 1) / p.num_splits;
  w.c_begin = split * per_split;
  w.c_end = min(n_chunks, w.c_begin + per_split);
  return w;
}

// Piece vi (8 halves) of key j's K and V rows for KV head kvh, from the paged
// cache through the sequence's block table; zeros for j >= n_keys.
__device__ __forceinline__ void load_kv_piece(const PagedAttentionParams& p, const int32_t* table, int kvh,
                                              int head_dim, int j, int n_keys, int vi, uint4& k, uint4& v) {
  k = v = make_uint4(0, 0, 0, 0);
  if (j >= n_keys) return;
  const size_t block = table[j / p.block_size];
  const size_t base = ((block * p.num_kv_heads + kvh) * p.block_size + j % p.block_size) * head_dim + vi * 8;
  k = *reinterpret_cast<const uint4*>(p.k_cache + base);
  v = *reinterpret_cast<const uint4*>(p.v_cache + base);
}

}  // namespace nibble::kernels
