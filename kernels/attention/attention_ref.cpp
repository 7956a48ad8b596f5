#include "attention/attention_ref.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "nibble/core/half.h"

namespace nibble::kernels::ref {

void paged_attention(const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache, uint16_t* out,
                     const int32_t* query_start, const int32_t* seq_lens, const int32_t* kv_indptr,
                     const int32_t* kv_indices, int num_seqs, int num_heads, int num_kv_heads, int head_dim,
                     int block_size, float scale, int window) {
  const int group = num_heads / num_kv_heads;
  std::vector<double> scores, acc(head_dim);
  for (int s = 0; s < num_seqs; ++s) {
    const int q_len = query_start[s + 1] - query_start[s];
    const int ctx_start = seq_lens[s] - q_len;
    for (int i = 0; i < q_len; ++i) {
      const size_t token = static_cast<size_t>(query_start[s] + i);
      const int n_keys = ctx_start + i + 1;
      const int first = window > 0 ? std::max(0, n_keys - window) : 0;
      for (int h = 0; h < num_heads; ++h) {
        const int kvh = h / group;
        const uint16_t* qv = q + (token * num_heads + h) * head_dim;
        scores.assign(n_keys, 0.0);
        double max_score = -1e300;
        for (int j = first; j < n_keys; ++j) {
          const size_t block = kv_indices[kv_indptr[s] + j / block_size];
          const uint16_t* kv = k_cache + ((block * num_kv_heads + kvh) * block_size + j % block_size) * head_dim;
          double dot = 0.0;
          for (int d = 0; d < head_dim; ++d) dot += static_cast<double>(fp16_to_float(qv[d])) * fp16_to_float(kv[d]);
          scores[j] = dot * scale;
          max_score = std::max(max_score, scores[j]);
        }
        double sum = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int j = first; j < n_keys; ++j) {
          const double p = std::exp(scores[j] - max_score);
          sum += p;
          const size_t block = kv_indices[kv_indptr[s] + j / block_size];
          const uint16_t* vv = v_cache + ((block * num_kv_heads + kvh) * block_size + j % block_size) * head_dim;
          for (int d = 0; d < head_dim; ++d) acc[d] += p * fp16_to_float(vv[d]);
        }
        uint16_t* o = out + (token * num_heads + h) * head_dim;
        for (int d = 0; d < head_dim; ++d) o[d] = float_to_fp16(static_cast<float>(acc[d] / sum));
      }
    }
  }
}

}  // namespace nibble::kernels::ref
