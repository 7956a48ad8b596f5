#pragma once
// A deterministic stand-in for a model. Each KV slot stores a hash of the
// token at that position chained with the hash stored in the previous
// position's slot, read back through the batch's block table. Logits are a
// pseudo-random function of that hash, so a wrong block table, a wrong
// position or an overwritten shared block changes the outputs, and reading a
// slot that was never written throws.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "nibble/engine/backend.h"

namespace nibble::testing {

class FakeBackend : public Backend {
 public:
  FakeBackend(int vocab_size, int num_blocks, int block_size, int max_position_embeddings = 4096,
              std::vector<int> eos = {0});

  std::string name() const override { return "fake"; }
  const ModelConfig& config() const override { return config_; }
  KvCacheShape kv_cache_shape() const override { return shape_; }
  void forward(const Batch& batch, std::vector<float>& logits) override;

  // The logits a model with this backend's rule gives after exactly these tokens.
  static void reference_logits(std::span<const int32_t> tokens, int vocab_size, std::vector<float>& logits);

  // Test hooks.
  std::function<void(const Batch&)> before_forward;  // may throw to simulate a failure
  std::chrono::microseconds delay{0};
  std::atomic<int> steps{0};
  std::vector<int> step_tokens;  // tokens per forward call (guarded by mu_)
  std::vector<int> tokens_per_step() const;

 private:
  struct Slot {
    uint64_t hash = 0;
    int32_t position = -1;
  };
  static uint64_t chain(uint64_t previous, int32_t token, int32_t position);
  static void fill_logits(uint64_t hash, int vocab_size, float* out);

  ModelConfig config_;
  KvCacheShape shape_;
  std::vector<Slot> kv_;
  mutable std::mutex mu_;
};

}  // namespace nibble::testing
