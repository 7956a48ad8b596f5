#pragma once
// Shared by the GPU benchmark programs (bench/cuda_decode, bench/sampling).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "nibble/engine/batch.h"

namespace nibble::bench {

double median(std::vector<double> values);

// Median milliseconds of `enqueue` (work it enqueues on `stream`) timed with CUDA
// events over `reps` runs, after one untimed warm-up run.
double median_event_ms(cudaStream_t stream, const std::function<void()>& enqueue, int reps);

// Device allocations freed together when it goes out of scope; get<T>(n) throws
// std::runtime_error when cudaMalloc fails.
class DeviceBuffers {
 public:
  DeviceBuffers() = default;
  DeviceBuffers(const DeviceBuffers&) = delete;
  DeviceBuffers& operator=(const DeviceBuffers&) = delete;
  ~DeviceBuffers();
  template <typename T>
  T* get(size_t n) {
    return static_cast<T*>(allocate(n * sizeof(T)));
  }

 private:
  void* allocate(size_t bytes);
  std::vector<void*> ptrs_;
};

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
