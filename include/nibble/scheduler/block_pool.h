#pragma once
// The paged KV cache's bookkeeping: a fixed pool of blocks with reference
// counts, a free list in LRU order and the prefix cache (full blocks keyed by
// a chained hash of their whole prefix). The backend owns the memory; this
// class only decides which block ids hold what.
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace nibble {

// 128-bit chained hash of a full block: two independent 64-bit lanes over the
// parent block's hash and the block's token ids. A hit also compares the token
// ids, so a collision needs both lanes of the whole chain to collide.
struct BlockHash {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const BlockHash&) const = default;
};

// The parent of a sequence's first block.
inline constexpr BlockHash kRootBlockHash{0x6a09e667f3bcc908ull, 0xbb67ae8584caa73bull};

BlockHash hash_block(const BlockHash& parent, std::span<const int32_t> tokens);

class BlockPool {
 public:
  BlockPool(int num_blocks, int block_size, bool enable_caching);

  int num_blocks() const { return static_cast<int>(refcount_.size()); }
  int block_size() const { return block_size_; }
  bool caching_enabled() const { return caching_; }
  int num_free() const { return num_free_; }  // refcount 0, cached or not
  int num_used() const { return num_blocks() - num_free_; }
  int refcount(int32_t block) const { return refcount_[block]; }
  bool is_cached(int32_t block) const { return has_hash_[block] != 0; }

  // Takes the least recently freed block (requires num_free() > 0); a cached
  // block loses its hash. The block starts with refcount 1.
  int32_t allocate();
  // One more owner; a free cached block leaves the free list.
  void retain(int32_t block);
  // One owner fewer; at 0 the block becomes the most recently freed one and
  // keeps its hash until allocate() reuses it.
  void release(int32_t block);

  // The cached block holding exactly these tokens after this prefix, if any.
  std::optional<int32_t> lookup(const BlockHash& hash, std::span<const int32_t> tokens) const;
  // Records a full, computed block under its hash. Does nothing when caching
  // is off, the block is already cached, or another block holds the hash.
  void cache_block(int32_t block, const BlockHash& hash, std::span<const int32_t> tokens);

  // Throws nibble::Error when the free list and the reference counts disagree
  // or the hash index is inconsistent (tests call it after every step).
  void check_invariants() const;

 private:
  struct HashOf {
    size_t operator()(const BlockHash& h) const { return static_cast<size_t>(h.lo ^ (h.hi * 0x9E3779B97F4A7C15ull)); }
  };
  void unlink_free(int32_t block);
  void append_free(int32_t block);
  void forget_hash(int32_t block);

  int block_size_;
  bool caching_;
  std::vector<int32_t> refcount_;
  // Free list: doubly linked through prev_/next_ (-1 ends), head = LRU.
  std::vector<int32_t> prev_, next_;
  std::vector<uint8_t> in_free_;
  int32_t head_ = -1, tail_ = -1;
  int num_free_ = 0;
  // Prefix cache.
  std::vector<uint8_t> has_hash_;
  std::vector<BlockHash> hash_;
  std::vector<int32_t> tokens_;  // [num_blocks * block_size], valid where has_hash_
  std::unordered_map<BlockHash, int32_t, HashOf> index_;
};

}  // namespace nibble
