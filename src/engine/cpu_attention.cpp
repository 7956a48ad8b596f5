#include "cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu_math.h"

namespace nibble {

namespace {

// One query head of one token over context positions [first, context) of its
// sequence, whose blocks are `blocks`. scores has room for `context` floats.
NIBBLE_VECTOR_CLONES void attend(const float* q, const CpuPagedKv& kv, int layer, int kv_head, const int32_t* blocks,
                                 int first, int context, float scale, float* scores, float* out) {
  const int head_dim = kv.head_dim(), block_size = kv.block_size();
  float max_score = -std::numeric_limits<float>::infinity();
  for (int c = first; c < context; ++c) {
    scores[c] = dot(q, kv.key(layer, blocks[c / block_size], kv_head, c % block_size), head_dim) * scale;
    max_score = std::max(max_score, scores[c]);
  }
  float sum = 0.0f;
  for (int c = first; c < context; ++c) {
    scores[c] = std::exp(scores[c] - max_score);
    sum += scores[c];
  }
  std::fill(out, out + head_dim, 0.0f);
  const float inv_sum = 1.0f / sum;
  for (int c = first; c < context; ++c)
    axpy(scores[c] * inv_sum, kv.value(layer, blocks[c / block_size], kv_head, c % block_size), out, head_dim);
}

}  // namespace

void cpu_paged_attention(const float* q, int q_heads, const CpuPagedKv& kv, int layer, const Batch& batch,
                         const std::vector<int>& token_seq, int sliding_window, float* out, ThreadPool& pool) {
  const int head_dim = kv.head_dim();
  const int group = q_heads / kv.kv_heads();  // query heads per KV head
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const int max_len = batch.num_seqs() ? *std::max_element(batch.seq_lens.begin(), batch.seq_lens.end()) : 0;
  const size_t items = static_cast<size_t>(batch.num_tokens()) * q_heads;

  pool.parallel_for(items, [&](size_t begin, size_t end) {
    std::vector<float> scores(max_len);
    for (size_t item = begin; item < end; ++item) {
      const int t = static_cast<int>(item / q_heads), h = static_cast<int>(item % q_heads);
      const int s = token_seq[t];
      const int context = batch.positions[t] + 1;
      const int first = sliding_window > 0 ? std::max(0, context - sliding_window) : 0;
      attend(q + item * head_dim, kv, layer, h / group, batch.kv_indices.data() + batch.kv_indptr[s], first, context,
             scale, scores.data(), out + item * head_dim);
    }
  });
}

}  // namespace nibble
