#include "sequence_driver.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace nibble::test {

SequenceDriver::SequenceDriver(Backend& backend, std::vector<int32_t> free_blocks)
    : backend_(backend), free_blocks_(std::move(free_blocks)) {
  std::reverse(free_blocks_.begin(), free_blocks_.end());  // pop from the back
}

int SequenceDriver::add(std::vector<int32_t> tokens) {
  Sequence s;
  s.logits.resize(tokens.size());
  s.tokens = std::move(tokens);
  seqs_.push_back(std::move(s));
  return static_cast<int>(seqs_.size()) - 1;
}

void SequenceDriver::step(const std::vector<Work>& work) {
  const int block_size = backend_.kv_cache_shape().block_size;
  Batch batch;
  batch.query_start.push_back(0);
  std::vector<std::vector<int32_t>> tables;
  for (const Work& w : work) {
    Sequence& s = seqs_[w.seq];
    if (s.computed + w.count > static_cast<int>(s.tokens.size())) throw std::logic_error("step past the tokens");
    for (int j = 0; j < w.count; ++j) {
      batch.logits_indices.push_back(batch.num_tokens());
      batch.token_ids.push_back(s.tokens[s.computed + j]);
      batch.positions.push_back(s.computed + j);
    }
    batch.query_start.push_back(batch.num_tokens());
    const int len = s.computed + w.count;
    batch.seq_lens.push_back(len);
    while (static_cast<int>(s.blocks.size()) * block_size < len) {
      if (free_blocks_.empty()) throw std::logic_error("out of KV blocks");
      s.blocks.push_back(free_blocks_.back());
      free_blocks_.pop_back();
    }
    tables.push_back(s.blocks);
  }
  set_block_tables(batch, tables, block_size);
  std::vector<float> logits;
  backend_.forward(batch, logits);
  const int vocab = backend_.config().vocab_size;
  if (logits.size() != batch.logits_indices.size() * vocab) throw std::logic_error("wrong logits size");
  size_t row = 0;
  for (const Work& w : work) {
    Sequence& s = seqs_[w.seq];
    for (int j = 0; j < w.count; ++j, ++row)
      s.logits[s.computed + j].assign(logits.begin() + row * vocab, logits.begin() + (row + 1) * vocab);
    s.computed += w.count;
  }
}

void SequenceDriver::run_to_end(int seq, int chunk) {
  while (computed(seq) < static_cast<int>(seqs_[seq].tokens.size()))
    step({{seq, std::min(chunk, static_cast<int>(seqs_[seq].tokens.size()) - computed(seq))}});
}

double max_relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || b.empty()) return INFINITY;
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

}  // namespace nibble::test
