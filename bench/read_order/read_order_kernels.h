#pragma once
// Read-only streams over a GPTQ-sized weight matrix in two orders, no
// arithmetic: the question is how much of the one-row GEMV's ceiling the access
// order alone sets (bench/NOTES.md, session 5).
#include <cuda_runtime_api.h>

#include <cstdint>

namespace nibble::bench {

// The GEMV's order: a [rows, cols] matrix of 16-byte chunks, one thread per
// column chunk walking down `rows_per_split` rows (consecutive threads on
// consecutive chunks of a row, so a warp reads 512 bytes per row), splits along
// the rows filling the grid. programmatic: launched like the fused-pdl GEMV
// (programmatic dependent launch; each block's first loads run before it waits
// for the kernel before it).
void launch_read_rows(const uint4* matrix, int64_t rows, int64_t cols, int64_t rows_per_split, unsigned* sink,
                      cudaStream_t stream, bool programmatic = false);

// The same bytes as contiguous runs: `warps` warps, each streaming its own
// contiguous stretch with all 32 lanes on consecutive chunks (the order a layout
// repacked per warp would give).
void launch_read_runs(const uint4* matrix, int64_t chunks, int64_t warps, unsigned* sink, cudaStream_t stream);

}  // namespace nibble::bench
