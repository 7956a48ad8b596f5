// The KV block pool: reference counts, LRU free list, prefix-cache index.
#include <gtest/gtest.h>

#include "nibble/core/error.h"
#include "nibble/scheduler/block_pool.h"

namespace nibble {
namespace {

std::vector<int32_t> tokens(int32_t start, int n) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = start + i;
  return t;
}

TEST(BlockHash, ChainsThePrefix) {
  auto a = tokens(1, 4), b = tokens(5, 4);
  BlockHash ha = hash_block(kRootBlockHash, a);
  EXPECT_EQ(ha, hash_block(kRootBlockHash, a));
  EXPECT_NE(hash_block(ha, b), hash_block(kRootBlockHash, b));  // same tokens, different prefix
  EXPECT_NE(hash_block(kRootBlockHash, a), hash_block(kRootBlockHash, b));
  auto c = a;
  std::swap(c[0], c[1]);
  EXPECT_NE(hash_block(kRootBlockHash, a), hash_block(kRootBlockHash, c));
  EXPECT_NE(ha.lo, ha.hi);
}

TEST(BlockPool, AllocatesLeastRecentlyFreedFirst) {
  BlockPool pool(4, 2, true);
  EXPECT_EQ(pool.num_free(), 4);
  int32_t a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  EXPECT_EQ(pool.num_free(), 1);
  pool.release(b);
  pool.release(a);
  pool.release(c);
  // Free order now: 3 (never used), b, a, c.
  EXPECT_EQ(pool.allocate(), 3);
  EXPECT_EQ(pool.allocate(), b);
  EXPECT_EQ(pool.allocate(), a);
  EXPECT_EQ(pool.allocate(), c);
  EXPECT_EQ(pool.num_free(), 0);
  EXPECT_THROW(pool.allocate(), Error);
  pool.check_invariants();
}

TEST(BlockPool, RefcountsKeepSharedBlocksAlive) {
  BlockPool pool(2, 2, true);
  int32_t a = pool.allocate();
  pool.retain(a);
  EXPECT_EQ(pool.refcount(a), 2);
  pool.release(a);
  EXPECT_EQ(pool.num_free(), 1);
  pool.release(a);
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_THROW(pool.release(a), Error);
  pool.check_invariants();
}

TEST(BlockPool, CachedBlocksSurviveFreeingUntilReused) {
  BlockPool pool(2, 2, true);
  auto t = tokens(10, 2);
  BlockHash h = hash_block(kRootBlockHash, t);
  int32_t a = pool.allocate();
  pool.cache_block(a, h, t);
  pool.release(a);
  ASSERT_EQ(pool.lookup(h, t), a);  // free but still cached
  pool.retain(a);                   // a hit takes it off the free list
  EXPECT_EQ(pool.num_free(), 1);
  pool.release(a);
  int32_t other = pool.allocate();  // the never-used block goes first
  EXPECT_NE(other, a);
  EXPECT_EQ(pool.lookup(h, t), a);
  EXPECT_EQ(pool.allocate(), a);  // now a is reused and loses its hash
  EXPECT_FALSE(pool.lookup(h, t).has_value());
  EXPECT_FALSE(pool.is_cached(a));
  pool.check_invariants();
}

TEST(BlockPool, LookupComparesTokens) {
  BlockPool pool(2, 2, true);
  auto t = tokens(10, 2);
  BlockHash h = hash_block(kRootBlockHash, t);
  int32_t a = pool.allocate();
  pool.cache_block(a, h, t);
  // A colliding hash with different tokens must miss.
  EXPECT_FALSE(pool.lookup(h, tokens(11, 2)).has_value());
  EXPECT_TRUE(pool.lookup(h, t).has_value());
  // A second block with the same hash is not indexed twice.
  int32_t b = pool.allocate();
  pool.cache_block(b, h, t);
  EXPECT_FALSE(pool.is_cached(b));
  EXPECT_EQ(pool.lookup(h, t), a);
  pool.check_invariants();
}

TEST(BlockPool, CachingOffNeverHits) {
  BlockPool pool(2, 2, false);
  auto t = tokens(10, 2);
  BlockHash h = hash_block(kRootBlockHash, t);
  int32_t a = pool.allocate();
  pool.cache_block(a, h, t);
  EXPECT_FALSE(pool.lookup(h, t).has_value());
}

TEST(BlockPool, RejectsEmptyPool) { EXPECT_THROW(BlockPool(0, 16, true), Error); }

}  // namespace
}  // namespace nibble
