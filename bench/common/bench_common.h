#pragma once
// Shared by the GPU benchmark programs (bench/cuda_decode, bench/sampling).
#include <cstdint>
#include <vector>

#include "nibble/engine/batch.h"

namespace nibble::bench {

double median(std::vector<double> values);

// Device-to-device copy of 1 GiB (median of 10 after 3 warm-ups), counting
// bytes read plus bytes written: the bandwidth every floor is measured against.
double device_copy_bandwidth_gbs();

// A sequence of a synthetic workload: its KV blocks and the tokens fed so far.
struct BenchSequence {
  std::vector<int32_t> blocks;
  std::vector<int32_t> tokens;
};

// A batch adding `count` tokens to each sequence (ids arbitrary but valid for
// `vocab`), one logits row per sequence.
Batch make_bench_batch(std::vector<BenchSequence>& seqs, int count, int block_size, int vocab);

}  // namespace nibble::bench
