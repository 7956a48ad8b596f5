#pragma once
// Latency summaries: mean and percentiles with linear interpolation between
// the closest ranks (numpy's default), the convention of vLLM's and SGLang's
// serving benchmarks, so numbers can be compared with theirs.
#include <vector>

namespace nibble::serve_bench {

struct Summary {
  std::size_t count = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};

// q in [0, 100]; values need not be sorted. Empty input gives 0.
double percentile(std::vector<double> values, double q);
Summary summarize(const std::vector<double>& values);

}  // namespace nibble::serve_bench
