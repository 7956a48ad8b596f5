#include "step_timeline.h"

#include <cuda_runtime_api.h>
#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

#include "bench_common.h"

namespace nibble::bench {
namespace {

constexpr size_t kBufferBytes = size_t{4} << 20;

// CUPTI hands its record buffers to plain C callbacks that carry no context, so
// the records of the one trace in progress collect here (the benchmark traces
// from one thread, one trace at a time).
std::vector<KernelSpan>& recorded() {
  static std::vector<KernelSpan> spans;
  return spans;
}

// "void nibble::kernels::detail::(anonymous namespace)::gemv<4, 1>(Params)" -> "gemv<4, 1>".
std::string short_name(const char* mangled) {
  if (!mangled) return "?";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  std::string name = status == 0 && demangled ? demangled.get() : mangled;
  // Drop the arguments, then every namespace qualifier outside template brackets.
  int depth = 0;
  size_t args = name.size(), last_scope = std::string::npos;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '<') ++depth;
    if (name[i] == '>') --depth;
    if (depth == 0 && name[i] == '(' && name.compare(i, 21, "(anonymous namespace)") != 0) {
      args = i;
      break;
    }
    if (depth == 0 && name.compare(i, 2, "::") == 0) last_scope = i + 2;
  }
  name = name.substr(0, args);
  if (last_scope != std::string::npos && last_scope < name.size()) name = name.substr(last_scope);
  const size_t space = name.rfind(' ', name.find('<'));  // a return type before the name
  if (space != std::string::npos && name.find('<') != std::string::npos) name = name.substr(space + 1);
  return name;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && record->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* kernel = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    recorded().push_back({short_name(kernel->name), kernel->start, kernel->end});
  }
  std::free(buffer);
}

bool cupti_ok(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return true;
  const char* text = nullptr;
  cuptiGetResultString(r, &text);
  std::fprintf(stderr, "kernel trace: %s failed: %s\n", what, text ? text : "unknown CUPTI error");
  return false;
}

double us(uint64_t ns) { return static_cast<double>(ns) * 1e-3; }

struct StepStats {
  double span = 0, busy = 0, idle = 0, overlap = 0;
};

// Span, time with at least one kernel running, idle time inside the span, and
// time two or more kernels ran at once, for kernels sorted by start.
StepStats step_stats(const KernelSpan* k, size_t n) {
  StepStats s;
  uint64_t first = k[0].start, last_end = k[0].end, busy = k[0].end - k[0].start, durations = busy;
  for (size_t i = 1; i < n; ++i) {
    durations += k[i].end - k[i].start;
    if (k[i].end <= last_end) continue;
    busy += k[i].end - std::max(k[i].start, last_end);
    last_end = k[i].end;
  }
  s.span = us(last_end - first);
  s.busy = us(busy);
  s.idle = s.span - s.busy;
  s.overlap = us(durations - busy);
  return s;
}

}  // namespace

bool start_kernel_trace() {
  recorded().clear();
  return cupti_ok(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "register callbacks") &&
         cupti_ok(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enable kernel records");
}

std::vector<KernelSpan> take_kernel_trace() {
  cudaDeviceSynchronize();
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::vector<KernelSpan> spans;
  spans.swap(recorded());
  std::sort(spans.begin(), spans.end(), [](const KernelSpan& a, const KernelSpan& b) { return a.start < b.start; });
  return spans;
}

void stop_kernel_trace() {
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  recorded().clear();
}

void print_kernel_timeline(const std::vector<KernelSpan>& spans, int steps) {
  if (spans.empty() || steps < 1 || spans.size() % static_cast<size_t>(steps) != 0) {
    std::printf("kernel timeline: %zu kernels do not split into %d equal steps\n", spans.size(), steps);
    return;
  }
  const size_t per_step = spans.size() / static_cast<size_t>(steps);
  const KernelSpan* last = spans.data() + spans.size() - per_step;
  std::printf("\nkernel timeline of the last step (%zu kernels; gap < 0: overlaps the kernels before it)\n", per_step);
  std::printf("%5s %-44s %10s %9s %9s\n", "#", "kernel", "start us", "dur us", "gap us");
  uint64_t running_end = last[0].start;
  for (size_t i = 0; i < per_step; ++i) {
    const KernelSpan& k = last[i];
    const double gap = us(k.start) - us(running_end);
    std::printf("%5zu %-44.44s %10.2f %9.2f %9.2f\n", i, k.name.c_str(), us(k.start - last[0].start), us(k.end - k.start),
                gap);
    running_end = std::max(running_end, k.end);
  }
  std::vector<double> span, busy, idle, overlap;
  struct PerName {
    int count = 0;
    double duration = 0, idle_before = 0;
  };
  std::map<std::string, PerName> names;
  for (int s = 0; s < steps; ++s) {
    const KernelSpan* k = spans.data() + static_cast<size_t>(s) * per_step;
    const StepStats st = step_stats(k, per_step);
    span.push_back(st.span);
    busy.push_back(st.busy);
    idle.push_back(st.idle);
    overlap.push_back(st.overlap);
    uint64_t end_so_far = k[0].start;
    for (size_t i = 0; i < per_step; ++i) {
      PerName& n = names[k[i].name];
      ++n.count;
      n.duration += us(k[i].end - k[i].start);
      if (k[i].start > end_so_far) n.idle_before += us(k[i].start - end_so_far);
      end_so_far = std::max(end_so_far, k[i].end);
    }
  }
  std::printf("\nper step (median of %d): span %.1f us, busy %.1f us, idle %.1f us, overlap %.1f us\n", steps,
              median(span), median(busy), median(idle), median(overlap));
  std::printf("%-44s %8s %12s %12s %14s\n", "kernel", "per step", "us per step", "us each", "idle before us");
  std::vector<std::pair<std::string, PerName>> sorted(names.begin(), names.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.duration > b.second.duration; });
  for (const auto& [name, n] : sorted)
    std::printf("%-44.44s %8.1f %12.1f %12.2f %14.1f\n", name.c_str(), static_cast<double>(n.count) / steps,
                n.duration / steps, n.duration / n.count, n.idle_before / steps);
}

}  // namespace nibble::bench
