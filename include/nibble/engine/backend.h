#pragma once
// The engine's interface: one forward pass over a flattened Batch with a paged
// KV cache the backend owns. The scheduler allocates block ids in
// [0, num_kv_blocks()); the backend stores K/V for those blocks.
#include <cstdint>
#include <string>
#include <vector>

#include "nibble/engine/batch.h"
#include "nibble/model/config.h"

namespace nibble {

struct KvCacheShape {
  int num_blocks = 0;
  int block_size = 16;  // tokens per block
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
};

}  // namespace nibble
