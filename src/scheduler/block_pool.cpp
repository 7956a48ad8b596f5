#include "nibble/scheduler/block_pool.h"

#include <algorithm>
#include <string>

#include "nibble/core/error.h"

namespace nibble {

namespace {

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// murmur3's 64-bit finalizer.
uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  return k ^ (k >> 33);
}

}  // namespace

BlockHash hash_block(const BlockHash& parent, std::span<const int32_t> tokens) {
  // Two lanes with different multipliers and rotations, each absorbing every
  // token (murmur3-style), then finalized with the token count mixed in.
  uint64_t a = parent.lo ^ 0x243f6a8885a308d3ull;
  uint64_t b = parent.hi ^ 0x13198a2e03707344ull;
  for (int32_t t : tokens) {
    uint64_t v = static_cast<uint32_t>(t);
    a = rotl(a ^ (v * 0x87c37b91114253d5ull), 31) * 0x4cf5ad432745937full + 0x52dce729;
    b = rotl(b ^ (v * 0x9E3779B97F4A7C15ull), 27) * 0xc2b2ae3d27d4eb4full + 0x38495ab5;
  }
  a = fmix64(a ^ tokens.size());
  b = fmix64(b ^ (tokens.size() * 0x94d049bb133111ebull));
  return {a, b};
}

BlockPool::BlockPool(int num_blocks, int block_size, bool enable_caching)
    : block_size_(block_size), caching_(enable_caching) {
  NIBBLE_CHECK(num_blocks > 0, "KV cache: the pool needs at least one block, got " + std::to_string(num_blocks));
  NIBBLE_CHECK(block_size > 0, "KV cache: block_size must be positive, got " + std::to_string(block_size));
  refcount_.assign(num_blocks, 0);
  prev_.assign(num_blocks, -1);
  next_.assign(num_blocks, -1);
  in_free_.assign(num_blocks, 0);
  has_hash_.assign(num_blocks, 0);
  hash_.resize(num_blocks);
  if (caching_) tokens_.resize(static_cast<size_t>(num_blocks) * block_size);
  for (int32_t b = 0; b < num_blocks; ++b) append_free(b);
}

void BlockPool::unlink_free(int32_t b) {
  if (prev_[b] >= 0) next_[prev_[b]] = next_[b]; else head_ = next_[b];
  if (next_[b] >= 0) prev_[next_[b]] = prev_[b]; else tail_ = prev_[b];
  prev_[b] = next_[b] = -1;
  in_free_[b] = 0;
  --num_free_;
}

void BlockPool::append_free(int32_t b) {
  prev_[b] = tail_;
  next_[b] = -1;
  if (tail_ >= 0) next_[tail_] = b; else head_ = b;
  tail_ = b;
  in_free_[b] = 1;
  ++num_free_;
}

void BlockPool::forget_hash(int32_t b) {
  if (!has_hash_[b]) return;
  index_.erase(hash_[b]);
  has_hash_[b] = 0;
}

int32_t BlockPool::allocate() {
  NIBBLE_CHECK(head_ >= 0, "KV cache: no free block to allocate");
  int32_t b = head_;
  unlink_free(b);
  forget_hash(b);
  refcount_[b] = 1;
  return b;
}

void BlockPool::retain(int32_t b) {
  if (refcount_[b] == 0) unlink_free(b);
  ++refcount_[b];
}

void BlockPool::release(int32_t b) {
  NIBBLE_CHECK(refcount_[b] > 0, "KV cache: block " + std::to_string(b) + " released more often than retained");
  if (--refcount_[b] == 0) append_free(b);
}

std::optional<int32_t> BlockPool::lookup(const BlockHash& hash, std::span<const int32_t> tokens) const {
  if (!caching_ || static_cast<int>(tokens.size()) != block_size_) return std::nullopt;
  auto it = index_.find(hash);
  if (it == index_.end()) return std::nullopt;
  const int32_t* stored = tokens_.data() + static_cast<size_t>(it->second) * block_size_;
  if (!std::equal(tokens.begin(), tokens.end(), stored)) return std::nullopt;
  return it->second;
}

void BlockPool::cache_block(int32_t b, const BlockHash& hash, std::span<const int32_t> tokens) {
  if (!caching_ || has_hash_[b] || static_cast<int>(tokens.size()) != block_size_) return;
  if (!index_.emplace(hash, b).second) return;
  has_hash_[b] = 1;
  hash_[b] = hash;
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + static_cast<size_t>(b) * block_size_);
}

void BlockPool::check_invariants() const {
  int count = 0;
  int32_t prev = -1;
  for (int32_t b = head_; b >= 0; b = next_[b]) {
    NIBBLE_CHECK(++count <= num_blocks(), "KV cache: free list has a cycle");
    NIBBLE_CHECK(prev_[b] == prev, "KV cache: free list back link broken at block " + std::to_string(b));
    NIBBLE_CHECK(refcount_[b] == 0 && in_free_[b], "KV cache: block " + std::to_string(b) + " is on the free list but referenced");
    prev = b;
  }
  NIBBLE_CHECK(prev == tail_, "KV cache: free list tail mismatch");
  NIBBLE_CHECK(count == num_free_, "KV cache: free count mismatch");
  for (int32_t b = 0; b < num_blocks(); ++b) {
    NIBBLE_CHECK(refcount_[b] >= 0, "KV cache: negative refcount");
    NIBBLE_CHECK((refcount_[b] == 0) == (in_free_[b] != 0), "KV cache: block " + std::to_string(b) + " free-list membership disagrees with its refcount");
    if (has_hash_[b]) {
      auto it = index_.find(hash_[b]);
      NIBBLE_CHECK(it != index_.end() && it->second == b, "KV cache: hash index lost block " + std::to_string(b));
    }
  }
  for (const auto& [hash, b] : index_) {
    NIBBLE_CHECK(has_hash_[b] && hash_[b] == hash, "KV cache: hash index points at a block without that hash");
  }
}

}  // namespace nibble
