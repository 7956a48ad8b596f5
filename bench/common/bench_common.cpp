#include "bench_common.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <stdexcept>

#include "nibble/engine/batch.h"

namespace nibble::bench {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double median_event_ms(cudaStream_t stream, const std::function<void()>& enqueue, int reps) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  enqueue();
  cudaStreamSynchronize(stream);
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(start, stream);
    enqueue();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0.f;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return median(times);
}

DeviceBuffers::~DeviceBuffers() {
  for (void* p : ptrs_) cudaFree(p);
}

void* DeviceBuffers::allocate(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, std::max<size_t>(bytes, 1)) != cudaSuccess) throw std::runtime_error("cudaMalloc");
  ptrs_.push_back(p);
  return p;
}

double device_copy_bandwidth_gbs() {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
    cudaFree(a);
    return 0.0;
  }
  cudaMemset(a, 1, bytes);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> times;
  for (int i = 0; i < 13; ++i) {
    cudaEventRecord(start);
    cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (i >= 3) times.push_back(ms);
  }
  cudaFree(a);
  cudaFree(b);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return 2.0 * bytes / (median(times) * 1e-3) / 1e9;
}

Batch make_bench_batch(std::vector<BenchSequence>& seqs, int count, int block_size, int vocab) {
  Batch b;
  b.query_start.push_back(0);
  std::vector<std::vector<int32_t>> tables;
  for (auto& s : seqs) {
    const int len = static_cast<int>(s.tokens.size());
    for (int i = 0; i < count; ++i) {
      const int32_t t = static_cast<int32_t>((static_cast<int64_t>(len) * 7919 + int64_t{i} * 104729) % vocab);
      s.tokens.push_back(t);
      b.token_ids.push_back(t);
      b.positions.push_back(len + i);
    }
    b.query_start.push_back(static_cast<int32_t>(b.token_ids.size()));
    b.seq_lens.push_back(static_cast<int32_t>(s.tokens.size()));
    b.logits_indices.push_back(static_cast<int32_t>(b.token_ids.size()) - 1);
    tables.push_back(s.blocks);
  }
  set_block_tables(b, tables, block_size);
  return b;
}

}  // namespace nibble::bench
