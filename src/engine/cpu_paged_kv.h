#pragma once
// The CPU backend's paged KV cache: fp32 K and V for every layer, laid out per
// layer as [block][kv_head][slot][head_dim] so one head's keys within a block
// are contiguous.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace nibble {

class CpuPagedKv {
 public:
  CpuPagedKv(int layers, int num_blocks, int block_size, int kv_heads, int head_dim);

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  int kv_heads() const { return kv_heads_; }
  int head_dim() const { return head_dim_; }

  // The head_dim values of (layer, block, head, slot).
  float* key(int layer, int block, int head, int slot) { return k_.data() + offset(layer, block, head, slot); }
  float* value(int layer, int block, int head, int slot) { return v_.data() + offset(layer, block, head, slot); }
  const float* key(int layer, int block, int head, int slot) const { return k_.data() + offset(layer, block, head, slot); }
  const float* value(int layer, int block, int head, int slot) const {
    return v_.data() + offset(layer, block, head, slot);
  }

 private:
  size_t offset(int layer, int block, int head, int slot) const {
    return ((((static_cast<size_t>(layer) * num_blocks_ + block) * kv_heads_ + head) * block_size_) + slot) * head_dim_;
  }

  int num_blocks_, block_size_, kv_heads_, head_dim_;
  std::vector<float> k_, v_;
};

}  // namespace nibble
