#pragma once
// Drives a Backend the way a scheduler would, for tests: sequences of known
// tokens, KV blocks handed out from a given list, and steps that schedule a
// chosen number of new tokens per sequence. Every new token's logits are
// requested and kept, indexed by (sequence, position).
#include <cstdint>
#include <vector>

#include "nibble/engine/backend.h"

namespace nibble::test {

class SequenceDriver {
 public:
  // Blocks are taken from the front of free_blocks as sequences grow.
  SequenceDriver(Backend& backend, std::vector<int32_t> free_blocks);

  int add(std::vector<int32_t> tokens);  // returns the sequence's index

  struct Work {
    int seq;
    int count;  // new tokens to compute this step
  };
  void step(const std::vector<Work>& work);

  // Runs sequence `seq` to the end of its tokens in chunks of `chunk` tokens.
  void run_to_end(int seq, int chunk);

  int computed(int seq) const { return seqs_[seq].computed; }
  const std::vector<float>& logits(int seq, int position) const { return seqs_[seq].logits[position]; }

 private:
  struct Sequence {
    std::vector<int32_t> tokens;
    int computed = 0;
    std::vector<int32_t> blocks;
    std::vector<std::vector<float>> logits;  // per position
  };
  Backend& backend_;
  std::vector<int32_t> free_blocks_;
  std::vector<Sequence> seqs_;
};

// max |a - b| / max |b| over two equally long vectors.
double max_relative_error(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace nibble::test
