#include "nibble/engine/backend.h"

#include <string>

#include "nibble/core/error.h"

namespace nibble {

std::vector<int32_t> Backend::forward_greedy(const Batch&) {
  throw_error(name() + " backend has no device-side greedy sampling");
}

std::vector<SampleResult> Backend::forward_sample(const Batch& batch, std::span<const SampleRow> rows) {
  std::vector<float> logits;
  forward(batch, logits);
  const size_t vocab = static_cast<size_t>(config().vocab_size);
  const size_t num_rows = vocab > 0 ? logits.size() / vocab : 0;
  Sampler sampler;
  std::vector<SampleResult> results;
  results.reserve(rows.size());
  for (const SampleRow& row : rows) {
    NIBBLE_CHECK(row.logits_row >= 0 && static_cast<size_t>(row.logits_row) < num_rows,
                 name() + " backend: sample row " + std::to_string(row.logits_row) + " is outside the step's " +
                     std::to_string(num_rows) + " logits rows");
    SampleInput input = row.input;
    input.logits = std::span<const float>(logits).subspan(static_cast<size_t>(row.logits_row) * vocab, vocab);
    results.push_back(sampler.sample(input));
  }
  return results;
}

}  // namespace nibble
