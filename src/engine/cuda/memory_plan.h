#pragma once
// The startup memory plan: weights + activations + a fixed KV pool inside the
// budget (--gpu-memory-utilization or --max-gpu-memory). Pure arithmetic, so a
// model that cannot fit is refused before any large allocation.
#include <cstdint>

namespace nibble::cuda {

struct MemoryPlanInput {
  uint64_t total_memory = 0;     // the card's
  uint64_t free_memory = 0;      // free now (after the CUDA context)
  double gpu_memory_utilization = 0.9;
  uint64_t max_gpu_memory = 0;   // > 0 overrides the utilization
  uint64_t weights = 0;
  uint64_t activations = 0;
  uint64_t kv_bytes_per_block = 0;
  int requested_kv_blocks = 0;   // > 0: exactly this many
  uint64_t headroom = 256ull << 20;  // library allocations (cuBLAS, graphs) outside the plan
};

struct MemoryPlan {
  uint64_t budget = 0;          // bytes this process may use in all
  uint64_t used_at_start = 0;   // total - free at startup (context, other processes)
  uint64_t kv_bytes = 0;
  int kv_blocks = 0;
};

// Throws nibble::Error with the numbers when the weights and activations do not
// fit, when no KV block fits, or when requested_kv_blocks do not fit.
MemoryPlan plan_memory(const MemoryPlanInput& in);

}  // namespace nibble::cuda
