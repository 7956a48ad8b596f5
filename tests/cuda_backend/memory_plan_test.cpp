// The startup memory plan and --max-gpu-memory parsing (no GPU needed).
#include <gtest/gtest.h>

#include "memory_plan.h"
#include "nibble/core/error.h"
#include "nibble/core/memory_size.h"
#include "nibble/engine/cuda_backend.h"

namespace nibble {
namespace {

constexpr uint64_t GiB = 1ull << 30;

cuda::MemoryPlanInput card_80g() {
  cuda::MemoryPlanInput in;
  in.total_memory = 80 * GiB;
  in.free_memory = 79 * GiB;  // 1 GiB taken by the context
  in.weights = 5 * GiB;
  in.activations = 2 * GiB;
  in.kv_bytes_per_block = 2 * 1024 * 1024;  // 2 MiB
  in.headroom = 0;
  return in;
}

TEST(MemoryPlan, KvPoolFillsTheUtilizationBudget) {
  auto in = card_80g();
  in.gpu_memory_utilization = 0.5;  // 40 GiB: 40 - 1 - 5 - 2 = 32 GiB of KV
  auto plan = cuda::plan_memory(in);
  EXPECT_EQ(plan.budget, 40 * GiB);
  EXPECT_EQ(plan.used_at_start, 1 * GiB);
  EXPECT_EQ(plan.kv_blocks, 32 * 512);
  EXPECT_EQ(plan.kv_bytes, 32 * GiB);
}

TEST(MemoryPlan, MaxGpuMemoryOverridesUtilization) {
  auto in = card_80g();
  in.max_gpu_memory = 24 * GiB;
  auto plan = cuda::plan_memory(in);
  EXPECT_EQ(plan.budget, 24 * GiB);
  EXPECT_EQ(plan.kv_bytes, 16 * GiB);
}

TEST(MemoryPlan, KvPoolNeverExceedsFreeMemory) {
  auto in = card_80g();
  in.free_memory = 20 * GiB;  // another process holds 60 GiB
  in.gpu_memory_utilization = 1.0;
  auto plan = cuda::plan_memory(in);
  EXPECT_LE(plan.kv_bytes + in.weights + in.activations, in.free_memory);
}

TEST(MemoryPlan, ModelThatDoesNotFitIsAClearError) {
  auto in = card_80g();
  in.max_gpu_memory = 6 * GiB;
  try {
    cuda::plan_memory(in);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("does not fit"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weights 5.00 GiB"), std::string::npos) << msg;
  }
}

TEST(MemoryPlan, RequestedBlocksMustFit) {
  auto in = card_80g();
  in.gpu_memory_utilization = 0.5;
  in.requested_kv_blocks = 100;
  EXPECT_EQ(cuda::plan_memory(in).kv_blocks, 100);
  in.requested_kv_blocks = 32 * 512 + 1;
  EXPECT_THROW(cuda::plan_memory(in), Error);
}

TEST(MemoryPlan, BadUtilizationIsRejected) {
  auto in = card_80g();
  in.gpu_memory_utilization = 1.5;
  EXPECT_THROW(cuda::plan_memory(in), Error);
  in.gpu_memory_utilization = 0.0;
  EXPECT_THROW(cuda::plan_memory(in), Error);
  in.max_gpu_memory = 100 * GiB;  // more than the card
  EXPECT_THROW(cuda::plan_memory(in), Error);
}

TEST(ParseMemorySize, UnitsAndErrors) {
  EXPECT_EQ(parse_memory_size("24GiB"), 24 * GiB);
  EXPECT_EQ(parse_memory_size("24G"), 24 * GiB);
  EXPECT_EQ(parse_memory_size("512MiB"), 512ull << 20);
  EXPECT_EQ(parse_memory_size("80GB"), 80'000'000'000ull);
  EXPECT_EQ(parse_memory_size("1.5GiB"), 3 * GiB / 2);
  EXPECT_EQ(parse_memory_size("1000000"), 1'000'000ull);
  EXPECT_EQ(parse_memory_size("2 tib"), 2048 * GiB);
  EXPECT_THROW(parse_memory_size("GiB"), Error);
  EXPECT_THROW(parse_memory_size("12 parsecs"), Error);
  EXPECT_THROW(parse_memory_size(""), Error);
  EXPECT_THROW(parse_memory_size("0"), Error);
}

}  // namespace
}  // namespace nibble
