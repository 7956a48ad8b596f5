#pragma once
// Builds Batches the way a scheduler would, for the backend tests: sequences of
// known tokens with block tables from a free list (or sharing a cached prefix),
// and steps that schedule a chosen number of new tokens per sequence. The same
// Batch can be fed to several backends whose KV pools have the same shape.
#include <cstdint>
#include <vector>

#include "nibble/engine/batch.h"

namespace nibble::test {

class StepDriver {
 public:
  StepDriver(int block_size, std::vector<int32_t> free_blocks) : block_size_(block_size), free_(std::move(free_blocks)) {}

  int add(std::vector<int32_t> tokens);
  // A sequence whose first `cached` tokens are already in `shared_blocks`
  // (a prefix-cache hit): only the rest is computed.
  int add_cached(std::vector<int32_t> tokens, std::vector<int32_t> shared_blocks, int cached);

  struct Work {
    int seq;
    int count;
  };
  // New tokens [computed, computed + count) of each sequence; logits for the
  // last new token of each. Advances `computed`.
  Batch step(const std::vector<Work>& work);

  void append(int seq, int32_t token) { seqs_[seq].tokens.push_back(token); }
  int computed(int seq) const { return seqs_[seq].computed; }
  int remaining(int seq) const { return static_cast<int>(seqs_[seq].tokens.size()) - seqs_[seq].computed; }
  const std::vector<int32_t>& blocks(int seq) const { return seqs_[seq].blocks; }

 private:
  struct Sequence {
    std::vector<int32_t> tokens;
    std::vector<int32_t> blocks;
    int computed = 0;
  };
  int block_size_;
  std::vector<int32_t> free_;
  std::vector<Sequence> seqs_;
};

}  // namespace nibble::test
