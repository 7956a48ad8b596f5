#include "fake_backend.h"

#include <string>
#include <thread>

#include "nibble/core/error.h"
#include "nibble/engine/sampler.h"

namespace nibble::testing {

FakeBackend::FakeBackend(int vocab_size, int num_blocks, int block_size, int max_position_embeddings,
                         std::vector<int> eos) {
  config_.vocab_size = vocab_size;
  config_.max_position_embeddings = max_position_embeddings;
  config_.eos_token_ids = std::move(eos);
  shape_.num_blocks = num_blocks;
  shape_.block_size = block_size;
  kv_.resize(static_cast<size_t>(num_blocks) * block_size);
}

uint64_t FakeBackend::chain(uint64_t previous, int32_t token, int32_t position) {
  return splitmix64(previous ^ splitmix64((static_cast<uint64_t>(position) << 32) | static_cast<uint32_t>(token)));
}

void FakeBackend::fill_logits(uint64_t hash, int vocab_size, float* out) {
  for (int v = 0; v < vocab_size; ++v) {
    out[v] = static_cast<float>(sampler_uniform(hash, static_cast<uint64_t>(v)) * 6.0 - 3.0);
  }
}

void FakeBackend::reference_logits(std::span<const int32_t> tokens, int vocab_size, std::vector<float>& logits) {
  uint64_t h = 0;
  for (size_t p = 0; p < tokens.size(); ++p) h = chain(h, tokens[p], static_cast<int32_t>(p));
  logits.resize(vocab_size);
  fill_logits(h, vocab_size, logits.data());
}

std::vector<int> FakeBackend::tokens_per_step() const {
  std::lock_guard lock(mu_);
  return step_tokens;
}

void FakeBackend::forward(const Batch& b, std::vector<float>& logits) {
  if (before_forward) before_forward(b);
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  const int bs = shape_.block_size;
  const int num_seqs = b.num_seqs();
  NIBBLE_CHECK(static_cast<int>(b.query_start.size()) == num_seqs + 1 && b.query_start[0] == 0 &&
                   b.query_start.back() == b.num_tokens(),
               "fake backend: bad query_start");
  NIBBLE_CHECK(b.positions.size() == b.token_ids.size(), "fake backend: positions size");
  NIBBLE_CHECK(static_cast<int>(b.kv_indptr.size()) == num_seqs + 1 &&
                   static_cast<int>(b.kv_last_block_len.size()) == num_seqs,
               "fake backend: bad block-table CSR");
  std::vector<uint64_t> token_hash(b.token_ids.size());
  for (int s = 0; s < num_seqs; ++s) {
    const int begin = b.query_start[s], end = b.query_start[s + 1];
    NIBBLE_CHECK(end > begin, "fake backend: empty sequence in batch");
    const int seq_len = b.seq_lens[s];
    const int nblocks = b.kv_indptr[s + 1] - b.kv_indptr[s];
    NIBBLE_CHECK(nblocks == (seq_len + bs - 1) / bs, "fake backend: block count does not match seq_len");
    NIBBLE_CHECK(b.kv_last_block_len[s] == seq_len - (nblocks - 1) * bs, "fake backend: bad last_block_len");
    NIBBLE_CHECK(b.positions[end - 1] == seq_len - 1, "fake backend: last position is not seq_len - 1");
    auto slot_of = [&](int32_t pos) -> Slot& {
      NIBBLE_CHECK(pos >= 0 && pos < seq_len, "fake backend: position outside the sequence");
      int32_t block = b.kv_indices[b.kv_indptr[s] + pos / bs];
      NIBBLE_CHECK(block >= 0 && block < shape_.num_blocks, "fake backend: block id out of range");
      return kv_[static_cast<size_t>(block) * bs + pos % bs];
    };
    for (int j = begin; j < end; ++j) {
      const int32_t pos = b.positions[j];
      NIBBLE_CHECK(j == begin || pos == b.positions[j - 1] + 1, "fake backend: positions not contiguous");
      NIBBLE_CHECK(b.token_ids[j] >= 0 && b.token_ids[j] < config_.vocab_size, "fake backend: token out of vocab");
      uint64_t previous = 0;
      if (pos > 0) {
        const Slot& prev = slot_of(pos - 1);
        NIBBLE_CHECK(prev.position == pos - 1,
                     "fake backend: reading KV of position " + std::to_string(pos - 1) + " that was never written");
        previous = prev.hash;
      }
      Slot& slot = slot_of(pos);
      slot.hash = chain(previous, b.token_ids[j], pos);
      slot.position = pos;
      token_hash[j] = slot.hash;
    }
  }
  const size_t vocab = static_cast<size_t>(config_.vocab_size);
  logits.resize(b.logits_indices.size() * vocab);
  for (size_t r = 0; r < b.logits_indices.size(); ++r) {
    fill_logits(token_hash[b.logits_indices[r]], config_.vocab_size, logits.data() + r * vocab);
  }
  ++steps;
  std::lock_guard lock(mu_);
  step_tokens.push_back(b.num_tokens());
}

}  // namespace nibble::testing
