#include "cpu_paged_kv.h"

#include <new>
#include <stdexcept>
#include <string>

#include "nibble/core/error.h"

namespace nibble {

CpuPagedKv::CpuPagedKv(int layers, int num_blocks, int block_size, int kv_heads, int head_dim)
    : num_blocks_(num_blocks), block_size_(block_size), kv_heads_(kv_heads), head_dim_(head_dim) {
  NIBBLE_CHECK(num_blocks > 0, "KV cache: the number of blocks must be positive, got " + std::to_string(num_blocks));
  NIBBLE_CHECK(block_size > 0, "KV cache: block_size must be positive, got " + std::to_string(block_size));
  const double requested = 2.0 * layers * num_blocks * kv_heads * block_size * head_dim * sizeof(float);
  const std::string what = std::to_string(num_blocks) + " blocks of " + std::to_string(block_size) + " tokens (" +
                           std::to_string(static_cast<long long>(requested / (1 << 20))) + " MiB)";
  NIBBLE_CHECK(requested < 0x1p50, "KV cache: " + what + " is too large");
  const size_t elements = static_cast<size_t>(layers) * num_blocks * kv_heads * block_size * head_dim;
  try {
    k_.assign(elements, 0.0f);
    v_.assign(elements, 0.0f);
  } catch (const std::bad_alloc&) {
    throw_error("KV cache: cannot allocate " + what);
  } catch (const std::length_error&) {
    throw_error("KV cache: cannot allocate " + what);
  }
}

}  // namespace nibble
