#include <algorithm>
#include <numeric>
#include <string>

#include "gptq_gemm/gptq_layout.h"
#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble::kernels {
namespace {

std::string describe(const GptqCheckpointView& c) {
  return "GPTQ linear [K=" + std::to_string(c.K) + ", N=" + std::to_string(c.N) +
         ", bits=" + std::to_string(c.bits) + ", group_size=" + std::to_string(c.group_size) + "]";
}

void validate(const GptqCheckpointView& c) {
  const std::string what = describe(c);
  NIBBLE_CHECK(c.bits == 4 || c.bits == 8, what + ": bits must be 4 or 8");
  const int pack = 32 / c.bits;
  NIBBLE_CHECK(c.K > 0 && c.K % pack == 0, what + ": K must be a positive multiple of " + std::to_string(pack));
  NIBBLE_CHECK(c.N > 0 && c.N % pack == 0, what + ": N must be a positive multiple of " + std::to_string(pack));
  NIBBLE_CHECK(c.group_size == -1 || (c.group_size > 0 && c.group_size % 32 == 0),
               what + ": group_size must be -1 or a positive multiple of 32");
  NIBBLE_CHECK(c.K <= (int64_t{1} << 30) && c.N <= (int64_t{1} << 30), what + ": K and N must be below 2^30");
  NIBBLE_CHECK(c.qweight && c.qzeros && c.scales, what + ": qweight, qzeros and scales are required");
}

// Bit position of row i (0 <= i < pack) inside a kernel-layout word: adjacent rows
// share a shift and sit in the two fp16 halves (see GptqPrepared).
int kernel_shift(int bits, int i) { return bits * (i / 2) + 16 * (i % 2); }

// Sorted-row permutation from g_idx (stable, like ExLlamaV2's make_sequential),
// checked against the contiguous groups that the kernels assume.
std::vector<int32_t> sorted_rows(const GptqCheckpointView& c, int group_rows, int64_t groups) {
  std::vector<int32_t> perm;
  if (!c.g_idx) return perm;
  std::vector<int64_t> count(static_cast<size_t>(groups), 0);
  bool sequential = true;
  for (int64_t k = 0; k < c.K; ++k) {
    const int32_t g = c.g_idx[k];
    NIBBLE_CHECK(g >= 0 && g < groups, describe(c) + ": g_idx[" + std::to_string(k) + "] = " + std::to_string(g) +
                                           " is outside [0, " + std::to_string(groups) + ")");
    ++count[static_cast<size_t>(g)];
    sequential = sequential && g == k / group_rows;
  }
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t expected = std::min<int64_t>(group_rows, c.K - g * group_rows);
    NIBBLE_CHECK(count[static_cast<size_t>(g)] == expected,
                 describe(c) + ": g_idx assigns " + std::to_string(count[static_cast<size_t>(g)]) + " rows to group " +
                     std::to_string(g) + ", expected " + std::to_string(expected));
  }
  if (sequential) return perm;
  perm.resize(static_cast<size_t>(c.K));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return c.g_idx[a] < c.g_idx[b]; });
  return perm;
}

}  // namespace

int64_t gptq_group_count(int64_t K, int group_size) {
  return group_size <= 0 ? 1 : (K + group_size - 1) / group_size;
}

void gptq_validate(const GptqCheckpointView& c) {
  validate(c);
  const int group_rows = c.group_size <= 0 ? static_cast<int>(c.K) : c.group_size;
  (void)sorted_rows(c, group_rows, gptq_group_count(c.K, c.group_size));
}

GptqPrepared gptq_prepare(const GptqCheckpointView& c) {
  validate(c);
  GptqPrepared p;
  p.K = c.K;
  p.N = c.N;
  p.bits = c.bits;
  p.group_rows = c.group_size <= 0 ? static_cast<int>(c.K) : c.group_size;
  p.groups = gptq_group_count(c.K, c.group_size);
  p.perm = sorted_rows(c, p.group_rows, p.groups);

  const int bits = c.bits, pack = 32 / bits;
  const uint32_t mask = (1u << bits) - 1;
  const int64_t K = c.K, N = c.N, words = K / pack;
  p.qweight.assign(static_cast<size_t>(words * N), 0);
  for (int64_t w = 0; w < words; ++w) {
    for (int i = 0; i < pack; ++i) {
      const int64_t row = w * pack + i;
      const int64_t src = p.perm.empty() ? row : p.perm[static_cast<size_t>(row)];
      const uint32_t* src_words = reinterpret_cast<const uint32_t*>(c.qweight) + (src / pack) * N;
      const int src_shift = bits * static_cast<int>(src % pack);
      const int dst_shift = kernel_shift(bits, i);
      uint32_t* dst = p.qweight.data() + w * N;
      for (int64_t n = 0; n < N; ++n) dst[n] |= ((src_words[n] >> src_shift) & mask) << dst_shift;
    }
  }

  p.scales.assign(c.scales, c.scales + p.groups * N);
  p.zeros.resize(static_cast<size_t>(p.groups * N));
  const uint32_t* qzeros = reinterpret_cast<const uint32_t*>(c.qzeros);
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t n = 0; n < N; ++n) {
      const uint32_t stored = (qzeros[g * (N / pack) + n / pack] >> (bits * (n % pack))) & mask;
      // `gptq` stores zero - 1 without wrapping back (zero 1..2^bits), as ExLlamaV2 and vLLM read it.
      const float zero = static_cast<float>(stored + (c.zero_minus_one ? 1 : 0));
      p.zeros[static_cast<size_t>(g * N + n)] = float_to_fp16(-(1024.0f + zero));
    }
  }
  return p;
}

}  // namespace nibble::kernels
