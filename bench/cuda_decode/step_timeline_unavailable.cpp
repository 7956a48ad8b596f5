// step_timeline.h for a CUDA toolkit without CUPTI: no trace.
#include <cstdio>

#include "step_timeline.h"

namespace nibble::bench {

bool start_kernel_trace() {
  std::fprintf(stderr, "kernel trace: this build has no CUPTI (the CUDA toolkit's profiling library)\n");
  return false;
}

std::vector<KernelSpan> take_kernel_trace() { return {}; }

void stop_kernel_trace() {}

void print_kernel_timeline(const std::vector<KernelSpan>&, int) {}

}  // namespace nibble::bench
