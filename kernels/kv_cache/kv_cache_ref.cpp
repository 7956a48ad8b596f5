#include "kv_cache/kv_cache_ref.h"

#include <cstddef>

namespace nibble::kernels::ref {

void write_kv_cache(const uint16_t* k, const uint16_t* v, const int32_t* slot_mapping, uint16_t* k_cache,
                    uint16_t* v_cache, int tokens, int num_kv_heads, int head_dim, int block_size) {
  for (int t = 0; t < tokens; ++t) {
    const int slot = slot_mapping[t];
    if (slot < 0) continue;
    const size_t block = slot / block_size, offset = slot % block_size;
    for (int h = 0; h < num_kv_heads; ++h) {
      const size_t dst = ((block * num_kv_heads + h) * block_size + offset) * head_dim;
      const size_t src = (static_cast<size_t>(t) * num_kv_heads + h) * head_dim;
      for (int d = 0; d < head_dim; ++d) {
        k_cache[dst + d] = k[src + d];
        v_cache[dst + d] = v[src + d];
      }
    }
  }
}

}  // namespace nibble::kernels::ref
