#pragma once
// Where a decode step's time goes between and across kernels: the device's own
// start and end stamps of every kernel (CUPTI activity records, graph replays
// included), so launch gaps and programmatic-launch overlap show up as measured,
// which timing each op alone (decode_breakdown.h) cannot show.
#include <cstdint>
#include <string>
#include <vector>

namespace nibble::bench {

// One kernel the device ran: its name (namespaces and arguments dropped) and its
// GPU timestamps in nanoseconds.
struct KernelSpan {
  std::string name;
  uint64_t start = 0, end = 0;
};

// Starts recording every kernel the device runs. Call it before the work to trace
// is set up (CUDA graphs instantiated afterwards are traced too). Returns false,
// with a message on stderr, when CUPTI cannot trace on this machine.
bool start_kernel_trace();
// Waits for the device, then returns the kernels recorded since the start or the
// last take, in start order, and forgets them.
std::vector<KernelSpan> take_kernel_trace();
void stop_kernel_trace();

// `spans` holds `steps` identical steps one after another: prints the last one
// kernel by kernel (start, duration, idle gap or overlap with the kernel before)
// and, over all steps, the span, busy time, idle time and overlap per step and
// the time per kernel name.
void print_kernel_timeline(const std::vector<KernelSpan>& spans, int steps);

}  // namespace nibble::bench
