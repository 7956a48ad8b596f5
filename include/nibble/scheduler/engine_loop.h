#pragma once
// The engine loop: one thread that owns the scheduler and the backend. HTTP
// threads submit requests and read token deltas from per-request channels.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "nibble/scheduler/request.h"

namespace nibble {

class Backend;
struct Batch;

struct SchedulerConfig {
  int max_num_seqs = 256;
  int max_num_batched_tokens = 2048;
  int max_model_len = 0;        // 0 = the model's max_position_embeddings
  int max_waiting = 1024;       // submissions beyond this are refused (HTTP 429)
  bool enable_prefix_caching = true;
  std::vector<int32_t> eos_token_ids;  // from generation_config.json and the tokenizer
};

struct EngineStats {
  int running = 0;
  int waiting = 0;
  int kv_blocks_total = 0;
  int kv_blocks_used = 0;  // referenced by live requests (cached-but-free blocks not counted)
  uint64_t prompt_tokens = 0;         // counters since start
  uint64_t generation_tokens = 0;
  uint64_t prefix_cache_queries = 0;  // prompt tokens looked up
  uint64_t prefix_cache_hits = 0;     // of which served from the cache
  uint64_t preemptions = 0;
};

// A submitted request's side of the channel. Thread-safe.
class RequestHandle {
 public:
  virtual ~RequestHandle() = default;
  // Blocks up to timeout for the next delivery; nullopt on timeout. After every
  // sample has delivered its finish, returns nullopt at once.
  virtual std::optional<RequestOutput> next(std::chrono::milliseconds timeout) = 0;
  // The client went away or a stop string matched: the engine frees the
  // request's blocks at its next step and delivers finish = Abort (unless it
  // had already finished).
  virtual void cancel() = 0;
  // Cancels one sample (index in [0, n)): it finishes with Abort and frees its
  // blocks at the engine's next step while the other samples go on (a stop
  // string matched on one choice). Finished samples and bad indices are ignored.
  virtual void cancel_sample(int index) = 0;
  virtual bool finished() const = 0;
};

enum class SubmitStatus { Ok, TooLong, QueueFull, ShuttingDown, Invalid };

struct SubmitResult {
  SubmitStatus status = SubmitStatus::Ok;
  std::string message;                    // why, when not Ok
  std::shared_ptr<RequestHandle> handle;  // when Ok
};

// Optional wiring for EngineLoop::start.
struct EngineLoopOptions {
  // A backend that can pick argmax tokens on its own (CudaBackend::forward_greedy:
  // forward() plus the argmax of each logits row, ties to the lowest id) lets
  // steps whose samples are all plain greedy skip copying logits to the host.
  // Left empty, start() uses the backend's own when has_device_greedy().
  std::function<std::vector<int32_t>(const Batch&)> forward_greedy;
  // Threads that sample a step's rows on the host (0: one per core, at most 16).
  // Tokens do not depend on it.
  int sampling_threads = 0;
};

class EngineLoop {
 public:
  virtual ~EngineLoop() = default;
  static std::unique_ptr<EngineLoop> start(Backend& backend, const SchedulerConfig& config);
  static std::unique_ptr<EngineLoop> start(Backend& backend, const SchedulerConfig& config, EngineLoopOptions options);

  virtual SubmitResult submit(GenerationRequest request) = 0;
  virtual EngineStats stats() const = 0;
  virtual int max_model_len() const = 0;
  // The largest n one request may ask for (GenerationRequest::n); callers
  // split larger n over several requests. 1 for a loop that does not fork samples.
  virtual int max_samples_per_request() const { return 1; }
  // Stops accepting, lets running requests finish for up to timeout, then
  // aborts the rest and joins the thread.
  virtual void shutdown(std::chrono::milliseconds drain_timeout) = 0;
};

}  // namespace nibble
