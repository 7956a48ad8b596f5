// How much of the one-row GEMV's ceiling the access order alone sets: reads the
// bytes of GPTQ 4-bit weight matrices (Llama-3-8B and 70B decode shapes) with no
// arithmetic, once in the GEMV's order (each thread down its column of 16-byte
// chunks, the grid split along the rows) and once as contiguous per-warp runs,
// each against the same run's device copy bandwidth; the GEMV's order also
// under programmatic dependent launch (the ceiling of the `fused-pdl` rows of
// bench_gptq_gemm: a read-only kernel of the same size and launch).
//   bench_read_order
// Rotates among enough copies of each matrix to exceed the L2 cache.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#include "bench_common.h"
#include "read_order_kernels.h"

namespace {

struct Shape {
  const char* name;
  int64_t K, N;
};

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device\n");
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double copy_gbs = nibble::bench::device_copy_bandwidth_gbs();
  std::printf("device %s, %d SMs, copy bandwidth %.0f GB/s (read + write)\n", prop.name, prop.multiProcessorCount,
              copy_gbs);
  std::printf("%-26s %8s %12s %9s %12s %9s %12s %9s %12s %9s\n", "shape (K x N, 4-bit)", "MB", "rows 8/SM us",
              "frac", "rows 4/SM us", "frac", "runs us", "frac", "rows pdl us", "frac");
  const std::vector<Shape> shapes = {{"fused qkv 4096x6144", 4096, 6144},   {"gate/up 4096x14336", 4096, 14336},
                                     {"down 14336x4096", 14336, 4096},       {"gate+up 4096x28672", 4096, 28672},
                                     {"70B gate+up 8192x57344", 8192, 57344}, {"70B down 28672x8192", 28672, 8192}};
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  for (const Shape& s : shapes) {
    const int64_t rows = s.K / 8, cols = s.N / 4;  // word rows, 16-byte chunks per row
    const size_t bytes = static_cast<size_t>(rows * cols) * 16;
    const int copies = static_cast<int>(std::max<size_t>(2, ((size_t{400} << 20) + bytes - 1) / bytes));
    nibble::bench::DeviceBuffers buffers;
    std::vector<const uint4*> matrices;
    for (int c = 0; c < copies; ++c) {
      uint4* m = buffers.get<uint4>(static_cast<size_t>(rows * cols));
      cudaMemsetAsync(m, 0x5A + c, bytes, stream);
      matrices.push_back(m);
    }
    unsigned* sink = buffers.get<unsigned>(1);
    const int64_t column_blocks = (cols + 127) / 128;
    // Microseconds per matrix of `read` over every copy (median of 10 rounds).
    auto per_matrix_us = [&](const std::function<void(const uint4*)>& read) {
      const auto all = [&] {
        for (const uint4* m : matrices) read(m);
      };
      return nibble::bench::median_event_ms(stream, all, 10) * 1e3 / copies;
    };
    auto rows_us = [&](int blocks_per_sm, bool programmatic) {
      const int64_t splits = std::max<int64_t>(1, int64_t{blocks_per_sm} * prop.multiProcessorCount / column_blocks);
      const int64_t rows_per_split = (rows + splits - 1) / splits;
      return per_matrix_us([&](const uint4* m) {
        nibble::bench::launch_read_rows(m, rows, cols, rows_per_split, sink, stream, programmatic);
      });
    };
    const double rows8 = rows_us(8, false), rows4 = rows_us(4, false), rows_pdl = rows_us(8, true);
    const int64_t warps = int64_t{8} * prop.multiProcessorCount * 4;  // the 8-per-SM grid's threads
    const double runs =
        per_matrix_us([&](const uint4* m) { nibble::bench::launch_read_runs(m, rows * cols, warps, sink, stream); });
    auto frac = [&](double us) { return static_cast<double>(bytes) / (us * 1e-6) / 1e9 / copy_gbs; };
    std::printf("%-26s %8.1f %12.1f %9.3f %12.1f %9.3f %12.1f %9.3f %12.1f %9.3f\n", s.name, bytes / 1e6, rows8,
                frac(rows8), rows4, frac(rows4), runs, frac(runs), rows_pdl, frac(rows_pdl));
  }
  cudaStreamDestroy(stream);
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
}
