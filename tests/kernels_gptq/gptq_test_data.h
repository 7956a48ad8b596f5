#pragma once
// Random GPTQ checkpoints for the tests: dense integer weights, zeros and scales,
// packed into the checkpoint layout by code independent of the code under test.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gptq_gemm/gptq_layout.h"

namespace nibble::kernels::testing {

struct CheckpointSpec {
  int64_t K = 0, N = 0;
  int bits = 4;
  int group_size = 128;  // -1: one group
  bool sym = true;
  bool v2 = false;        // checkpoint_format gptq_v2 (zero stored as is)
  bool act_order = false;
  bool with_g_idx = true;

  std::string name() const;
};

struct Checkpoint {
  CheckpointSpec spec;
  int64_t groups = 0;
  std::vector<int32_t> q;       // [K, N] quantized values
  std::vector<int32_t> zero;    // [groups, N] zero points (not the stored value)
  std::vector<uint16_t> scales; // fp16 [groups, N]
  std::vector<int32_t> g_idx;   // [K]
  std::vector<int32_t> qweight, qzeros;  // packed

  GptqCheckpointView view() const;
  int group_of(int64_t k) const { return g_idx[static_cast<size_t>(k)]; }
};

Checkpoint make_checkpoint(const CheckpointSpec& spec, std::mt19937& rng);

// fp16 values uniform in [-1, 1], never all zero.
std::vector<uint16_t> random_halves(size_t count, std::mt19937& rng, float lo = -1.f, float hi = 1.f);

// y[m, n] = sum_k x[m, k] (q - zero) scale + bias[n], in double, from the dense values.
std::vector<double> dense_product(const Checkpoint& c, const std::vector<uint16_t>& x, int64_t M,
                                  const uint16_t* bias);

// ||a - b|| / ||b|| over the first `count` elements.
double relative_error(const float* a, const double* b, size_t count);

// All 64 combinations of bits, sym, format, group size and act-order.
std::vector<CheckpointSpec> all_specs(int64_t K, int64_t N);

}  // namespace nibble::kernels::testing
