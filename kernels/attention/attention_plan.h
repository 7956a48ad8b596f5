#pragma once
// Host-side planning for kernels/attention (plain C++, no CUDA): how many query
// rows one block handles, and the list of work items of a step.
#include <cstdint>
#include <vector>

namespace nibble::kernels {

// Query rows (tokens x heads of one GQA group) per block: 64, or 16 when head_dim > 128.
inline int attention_tile_rows(int head_dim) { return head_dim > 128 ? 16 : 64; }

// New tokens of one sequence per work item; the GQA group must fit one tile.
inline int attention_tile_tokens(int head_dim, int group) {
  const int t = attention_tile_rows(head_dim) / group;
  return t > 0 ? t : 0;
}

struct AttentionWork {
  std::vector<int32_t> seq;   // sequence of each item
  std::vector<int32_t> qoff;  // first query of the item, within the sequence
};

// query_start: [num_seqs + 1] CSR of new tokens per sequence.
inline AttentionWork plan_attention_work(const std::vector<int32_t>& query_start, int tile_tokens) {
  AttentionWork w;
  for (size_t s = 0; s + 1 < query_start.size(); ++s) {
    const int q_len = query_start[s + 1] - query_start[s];
    for (int off = 0; off < q_len; off += tile_tokens) {
      w.seq.push_back(static_cast<int32_t>(s));
      w.qoff.push_back(off);
    }
  }
  return w;
}

}  // namespace nibble::kernels

namespace nibble::kernels {

// Flash-decoding split count: enough blocks to fill the GPU (about two per SM)
// when there are few work items, never more splits than 32-key chunks.
inline int attention_num_splits(int num_work, int num_kv_heads, int max_keys, int num_sms, int max_splits = 32) {
  const int blocks = num_work * num_kv_heads;
  if (blocks <= 0) return 1;
  int splits = (2 * num_sms + blocks - 1) / blocks;
  const int chunks = (max_keys + 31) / 32;
  if (splits > chunks) splits = chunks;
  if (splits > max_splits) splits = max_splits;
  return splits < 1 ? 1 : splits;
}

// Keys of one split step of the decode kernel (decode_attention.cu): splits
// cut a sequence's keys at multiples of this.
inline constexpr int kDecodeKeysPerStep = 128;
// Contexts up to this many keys take no split: one decode block per KV head
// beats two blocks plus a merge (measured at 129-161 keys, bench/NOTES.md).
inline constexpr int kDecodeNoSplitKeys = 256;

// Thread-block cluster size of the decode kernel on sm_90 (decode_attention.cu):
// with few blocks (batch 1-8) each (sequence, KV head, split) runs as a cluster
// of this many blocks that share its keys and merge through distributed shared
// memory; doubled while the `blocks` (work items x KV heads) still fit about
// one per SM, at most kDecodeMaxCluster (the portable cluster size; 8 measured
// best at 129 keys, 16 slightly better at 1,025: bench/NOTES.md), and halved
// while `splits` of them would exceed about four blocks per SM (a caller's
// split count far above decode_attention_num_splits': many small clusters
// measured slower than no cluster).
inline constexpr int kDecodeMaxCluster = 8;
inline int decode_attention_cluster(int blocks, int num_sms, int splits = 1, int max_cluster = kDecodeMaxCluster) {
  int c = 1;
  while (c < max_cluster && blocks > 0 && blocks * 2 * c <= num_sms) c *= 2;
  while (c > 1 && static_cast<long long>(blocks) * splits * c > 4LL * num_sms) c /= 2;
  return c;
}
// Keys one block of a decode cluster walks before a split (and the combine
// pass) pays for itself.
inline constexpr int kDecodeClusterBlockKeys = 256;

// Flash-decoding split count for the decode kernel: none up to
// kDecodeNoSplitKeys keys, then one split per kDecodeKeysPerStep keys as long
// as there are fewer than about two blocks per SM, and at most max_splits.
// Where the kernel runs clusters (decode_attention_cluster > 1) those blocks
// are the cluster's: a split only when a cluster block would walk more than
// kDecodeClusterBlockKeys keys.
inline int decode_attention_num_splits(int num_work, int num_kv_heads, int max_keys, int num_sms,
                                       int max_splits = 32) {
  const int blocks = num_work * num_kv_heads;
  if (blocks <= 0 || max_keys <= kDecodeNoSplitKeys) return 1;
  int splits = (2 * num_sms + blocks - 1) / blocks;
  const int steps = (max_keys + kDecodeKeysPerStep - 1) / kDecodeKeysPerStep;
  if (splits > steps) splits = steps;
  const int cluster = decode_attention_cluster(blocks, num_sms);
  if (cluster > 1) {
    const int by_keys = (max_keys + cluster * kDecodeClusterBlockKeys - 1) / (cluster * kDecodeClusterBlockKeys);
    splits /= cluster;
    if (splits > by_keys) splits = by_keys;
  }
  if (splits > max_splits) splits = max_splits;
  return splits < 1 ? 1 : splits;
}

// Keys one work item of `tile_tokens` queries reads at most (the split count's
// key bound): the longest context, or with a sliding window the window plus the
// item's other queries.
inline int attention_item_keys(int max_keys, int window, int tile_tokens) {
  if (window <= 0) return max_keys;
  const int span = window + (tile_tokens > 1 ? tile_tokens - 1 : 0);
  return span < max_keys ? span : max_keys;
}

}  // namespace nibble::kernels
