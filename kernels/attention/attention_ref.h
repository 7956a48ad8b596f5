#pragma once
// Scalar reference of kernels/attention: plain softmax attention per query over
// the paged cache, in fp64 (fp16 values as raw uint16_t). With window > 0 the
// query at position p sees only keys (p - window, p]; keys before that are not read.
#include <cstdint>

namespace nibble::kernels::ref {

void paged_attention(const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache, uint16_t* out,
                     const int32_t* query_start, const int32_t* seq_lens, const int32_t* kv_indptr,
                     const int32_t* kv_indices, int num_seqs, int num_heads, int num_kv_heads, int head_dim,
                     int block_size, float scale, int window = 0);

}  // namespace nibble::kernels::ref
