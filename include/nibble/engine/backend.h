#pragma once
// The engine's interface: one forward pass over a flattened Batch with a paged
// KV cache the backend owns. The scheduler allocates block ids in
// [0, num_kv_blocks()); the backend stores K/V for those blocks.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "nibble/engine/batch.h"
#include "nibble/engine/sampler.h"
#include "nibble/model/config.h"

namespace nibble {

struct KvCacheShape {
  int num_blocks = 0;
  int block_size = 16;  // tokens per block
};

// One sample to draw from row logits_row of a step's logits: the parameters and
// token history of a SampleInput (input.logits is unused). Several samples may
// share a row (a request with n > 1 at its first token).
struct SampleRow {
  int logits_row = 0;
  SampleInput input;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu", "cuda"
  virtual const ModelConfig& config() const = 0;
  virtual KvCacheShape kv_cache_shape() const = 0;
  // The longest context this backend computes exactly (0: the model's own
  // limit). A backend without sliding-window attention serves a windowed
  // model only up to its window.
  virtual int max_context() const { return 0; }

  // Runs the model over batch: writes the new tokens' K/V into their blocks and
  // fills logits with batch.logits_indices.size() rows of vocab_size fp32 values.
  virtual void forward(const Batch& batch, std::vector<float>& logits) = 0;

  // Backends that can take the argmax of each logits row themselves (ties to
  // the lowest id) let all-greedy steps skip copying logits to the host.
  virtual bool has_device_greedy() const { return false; }
  virtual std::vector<int32_t> forward_greedy(const Batch& batch);

  // Backends that run the whole Sampler (sampler.h: penalties, filters, the
  // seeded draw, logprobs) on the device let every step skip copying logits to
  // the host. forward_sample runs forward() and returns, per row, what
  // Sampler::sample gives on that logits row: the same token for greedy, and
  // for seeded draws too except where two sums of probabilities round
  // differently. The default samples on the host (forward() + Sampler).
  virtual bool has_device_sampling() const { return false; }
  virtual std::vector<SampleResult> forward_sample(const Batch& batch, std::span<const SampleRow> rows);
};

}  // namespace nibble
