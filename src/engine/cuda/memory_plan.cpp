#include "memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "nibble/core/error.h"

namespace nibble::cuda {
namespace {

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

}  // namespace

MemoryPlan plan_memory(const MemoryPlanInput& in) {
  NIBBLE_CHECK(in.max_gpu_memory > 0 || (in.gpu_memory_utilization > 0.0 && in.gpu_memory_utilization <= 1.0),
               "gpu-memory-utilization must be in (0, 1], got " + std::to_string(in.gpu_memory_utilization));
  NIBBLE_CHECK(in.kv_bytes_per_block > 0, "memory plan: KV block size is zero");
  MemoryPlan plan;
  plan.budget = in.max_gpu_memory > 0 ? in.max_gpu_memory
                                      : static_cast<uint64_t>(in.gpu_memory_utilization *
                                                              static_cast<double>(in.total_memory));
  NIBBLE_CHECK(plan.budget <= in.total_memory, "max-gpu-memory " + gib(plan.budget) + " is more than the card's " +
                                                   gib(in.total_memory));
  plan.used_at_start = in.total_memory > in.free_memory ? in.total_memory - in.free_memory : 0;
  const uint64_t fixed = plan.used_at_start + in.headroom + in.weights + in.activations;
  const std::string breakdown = "weights " + gib(in.weights) + " + activations " + gib(in.activations) +
                                " + in use at start " + gib(plan.used_at_start) + " + headroom " + gib(in.headroom);
  NIBBLE_CHECK(fixed < plan.budget, "the model does not fit in the GPU memory budget of " + gib(plan.budget) + ": " +
                                        breakdown + " = " + gib(fixed) +
                                        " (raise --gpu-memory-utilization / --max-gpu-memory, or lower "
                                        "--max-num-batched-tokens / --max-num-seqs)");
  const uint64_t room = std::min(plan.budget - fixed, in.free_memory > in.headroom + in.weights + in.activations
                                                          ? in.free_memory - in.headroom - in.weights - in.activations
                                                          : 0);
  const uint64_t fit = room / in.kv_bytes_per_block;
  if (in.requested_kv_blocks > 0) {
    NIBBLE_CHECK(static_cast<uint64_t>(in.requested_kv_blocks) <= fit,
                 std::to_string(in.requested_kv_blocks) + " KV blocks need " +
                     gib(in.requested_kv_blocks * in.kv_bytes_per_block) + " but only " + gib(room) +
                     " is left after " + breakdown);
    plan.kv_blocks = in.requested_kv_blocks;
  } else {
    NIBBLE_CHECK(fit >= 1, "no KV cache block fits in the GPU memory budget of " + gib(plan.budget) + " after " +
                               breakdown);
    plan.kv_blocks = static_cast<int>(std::min<uint64_t>(fit, 1u << 30));
  }
  plan.kv_bytes = static_cast<uint64_t>(plan.kv_blocks) * in.kv_bytes_per_block;
  return plan;
}

}  // namespace nibble::cuda
