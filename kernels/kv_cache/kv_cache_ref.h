#pragma once
#include <cstdint>

namespace nibble::kernels::ref {

void write_kv_cache(const uint16_t* k, const uint16_t* v, const int32_t* slot_mapping, uint16_t* k_cache,
                    uint16_t* v_cache, int tokens, int num_kv_heads, int head_dim, int block_size);

}  // namespace nibble::kernels::ref
