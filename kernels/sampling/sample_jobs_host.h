#pragma once
// Host side of GPU sampling: turns each sample's SampleInput (parameters and
// token history; its logits stay on the device) into the plain SampleJob and
// SampleEntry arrays that sample_rows() reads. One entry per distinct token id
// the sample's bias, suppression or penalties touch, sorted by id, so the
// kernel applies steps 2-5 of sampler.h without a dense per-sample array.
#include <cstdint>
#include <vector>

#include "nibble/engine/sampler.h"
#include "sampling/sample_job.h"

namespace nibble::kernels {

class SampleJobBuilder {
 public:
  explicit SampleJobBuilder(int vocab_size);

  void clear();
  // Appends a job reading row logits_row. Returns false (and appends nothing)
  // when the job's entries would take the total past max_entries or the
  // sample asks for more top_logprobs than the kernel returns: such a sample
  // is drawn on the host instead.
  bool add(int logits_row, const SampleInput& input, size_t max_entries);

  const std::vector<SampleJob>& jobs() const { return jobs_; }
  const std::vector<SampleEntry>& entries() const { return entries_; }
  int vocab_size() const { return vocab_; }

 private:
  SampleEntry& entry(int32_t id);

  int vocab_;
  std::vector<int32_t> slot_;    // per id: index into entries_ while the current job is built, -1 otherwise
  std::vector<int32_t> counts_;  // per entry of the current job: output occurrences
  std::vector<SampleJob> jobs_;
  std::vector<SampleEntry> entries_;
};

// The SampleResult that Sampler::sample gives for a kernel output.
SampleResult to_sample_result(const SampleOutput& out, bool logprobs);

}  // namespace nibble::kernels
