#pragma once
// Checks a GenerationRequest against the engine's limits before it is queued.
// Shared by EngineLoop::submit (any thread) and the Scheduler itself.
#include <string>

#include "nibble/scheduler/engine_loop.h"
#include "nibble/scheduler/request.h"

namespace nibble {

struct RequestLimits {
  int max_model_len = 0;
  int vocab_size = 0;
  int num_kv_blocks = 0;
  int block_size = 16;
  int max_num_seqs = 256;
};

struct ValidationResult {
  SubmitStatus status = SubmitStatus::Ok;
  std::string message;
  bool ok() const { return status == SubmitStatus::Ok; }
};

// Invalid: a parameter out of range (the message names the field and value).
// TooLong: prompt + max_tokens exceeds max_model_len, or one sequence of that
// length could never fit in the whole KV pool.
ValidationResult validate_request(const GenerationRequest& request, const RequestLimits& limits);

}  // namespace nibble
