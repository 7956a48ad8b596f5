#include "gpu_test_util.h"

#include <cmath>

#include "nibble/core/half.h"

namespace nibble::test {

bool cuda_device_present() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

uint64_t fresh_seed() { return (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}(); }

std::vector<uint16_t> random_half(size_t n, std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = float_to_fp16(dist(rng));
  return v;
}

std::vector<float> random_float(size_t n, std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

namespace {

template <typename F>
Comparison compare(size_t n, F value_pair) {
  Comparison c;
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    auto [a, b] = value_pair(i);
    if (!std::isfinite(a)) {
      ++c.non_finite;
      continue;
    }
    diff += (a - b) * (a - b);
    norm += b * b;
  }
  c.count = n;
  c.rel_error = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  return c;
}

}  // namespace

Comparison compare_half(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want) {
  return compare(want.size(), [&](size_t i) {
    return std::pair<double, double>(fp16_to_float(got[i]), fp16_to_float(want[i]));
  });
}

Comparison compare_float(const std::vector<float>& got, const std::vector<float>& want) {
  return compare(want.size(), [&](size_t i) { return std::pair<double, double>(got[i], want[i]); });
}

void report(const std::string& what, const Comparison& c) {
  std::printf("[compare] %-48s rel_error %.3e over %zu elements (%zu non-finite)\n", what.c_str(), c.rel_error,
              c.count, c.non_finite);
}

}  // namespace nibble::test
