#include "step_driver.h"

#include <stdexcept>

namespace nibble::test {

int StepDriver::add(std::vector<int32_t> tokens) {
  seqs_.push_back({std::move(tokens), {}, 0});
  return static_cast<int>(seqs_.size()) - 1;
}

int StepDriver::add_cached(std::vector<int32_t> tokens, std::vector<int32_t> shared_blocks, int cached) {
  seqs_.push_back({std::move(tokens), std::move(shared_blocks), cached});
  return static_cast<int>(seqs_.size()) - 1;
}

Batch StepDriver::step(const std::vector<Work>& work) {
  Batch b;
  b.query_start.push_back(0);
  std::vector<std::vector<int32_t>> tables;
  for (const Work& w : work) {
    Sequence& s = seqs_[w.seq];
    if (w.count <= 0 || s.computed + w.count > static_cast<int>(s.tokens.size()))
      throw std::logic_error("StepDriver: bad work");
    for (int i = 0; i < w.count; ++i) {
      b.token_ids.push_back(s.tokens[s.computed + i]);
      b.positions.push_back(s.computed + i);
    }
    s.computed += w.count;
    while (static_cast<int>(s.blocks.size()) * block_size_ < s.computed) {
      if (free_.empty()) throw std::logic_error("StepDriver: out of blocks");
      s.blocks.push_back(free_.front());
      free_.erase(free_.begin());
    }
    b.query_start.push_back(static_cast<int32_t>(b.token_ids.size()));
    b.seq_lens.push_back(s.computed);
    b.logits_indices.push_back(static_cast<int32_t>(b.token_ids.size()) - 1);
    tables.push_back(s.blocks);
  }
  set_block_tables(b, tables, block_size_);
  return b;
}

}  // namespace nibble::test
