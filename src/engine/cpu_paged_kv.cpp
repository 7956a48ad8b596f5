#include "cpu_paged_kv.h"

#include "nibble/core/error.h"

namespace nibble {

CpuPagedKv::CpuPagedKv(int layers, int num_blocks, int block_size, int kv_heads, int head_dim)
    : num_blocks_(num_blocks), block_size_(block_size), kv_heads_(kv_heads), head_dim_(head_dim) {
  NIBBLE_CHECK(num_blocks > 0, "KV cache: the number of blocks must be positive, got " + std::to_string(num_blocks));
  NIBBLE_CHECK(block_size > 0, "KV cache: block_size must be positive, got " + std::to_string(block_size));
  const size_t elements = static_cast<size_t>(layers) * num_blocks * kv_heads * block_size * head_dim;
  try {
    k_.assign(elements, 0.0f);
    v_.assign(elements, 0.0f);
  } catch (const std::bad_alloc&) {
    throw_error("KV cache: cannot allocate " + std::to_string(2 * elements * sizeof(float) >> 20) + " MiB for " +
                std::to_string(num_blocks) + " blocks of " + std::to_string(block_size) + " tokens");
  }
}

}  // namespace nibble
