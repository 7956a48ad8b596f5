#pragma once
// The scheduler as a pure step function (vLLM V1 style): no threads, no
// clocks. The engine loop calls schedule() -> Backend::forward(batch) ->
// update(); tests drive the same calls directly.
//
// Every sequence (one sample of a request) has tokens (prompt + generated)
// and computed_tokens (those whose K/V are in its blocks). Each step:
//  1. running sequences in admission order get their uncomputed tokens (one
//     in decode, a chunk in prefill) under max_num_batched_tokens; when the
//     pool runs out of blocks the most recently admitted running sequence is
//     preempted (blocks freed, requeued at the front of the waiting queue to
//     recompute prompt + generated-so-far later);
//  2. when nothing was preempted, waiting sequences are admitted first-come
//     first-served (the head blocks the rest: no starvation) while the token
//     budget, max_num_seqs and free blocks allow, reusing prefix-cached blocks
//     (never the whole prompt: the last token is always computed).
// A sequence whose scheduled tokens reach the end of its known tokens samples
// its next token in update(). A request with n > 1 is prefilled once as
// sample 0; at its first sample it forks: the other samples share the full
// prompt blocks by refcount and recompute the partial last block themselves.
// One sample can be cancelled alone (abort_sample): its blocks are freed and
// the request's other samples go on; a sample cancelled before the fork is
// simply never forked (sample 0's cancel hands the prefill to the next one).
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "nibble/engine/backend.h"
#include "nibble/engine/batch.h"
#include "nibble/engine/sampler.h"
#include "nibble/scheduler/block_pool.h"
#include "nibble/scheduler/engine_loop.h"
#include "nibble/scheduler/request.h"
#include "nibble/scheduler/request_validation.h"

namespace nibble {

class ThreadPool;

// One sequence's part of a step.
struct ScheduledSequence {
  uint64_t seq_id = 0;
  uint64_t request_key = 0;
  int num_new_tokens = 0;
  int logits_row = -1;  // row of the step's logits this sequence samples from, -1 if none
};

struct SchedulerStep {
  Batch batch;
  std::vector<ScheduledSequence> sequences;  // parallel to the batch's sequences
  // Every sampling row takes the plain argmax of the raw logits (temperature
  // 0, no logprobs, bias, penalties or min_tokens masking): a backend may
  // then pick the tokens itself (update_with_tokens) instead of returning logits.
  bool greedy_only = true;
  bool empty() const { return sequences.empty(); }
};

// One delivery for the request with this key (the engine loop routes it).
struct Delivery {
  uint64_t request_key = 0;
  RequestOutput output;
};

class Scheduler {
 public:
  // seed seeds the generator of seeds for requests submitted without one.
  Scheduler(const SchedulerConfig& config, KvCacheShape kv, int vocab_size, int max_model_len, uint64_t seed = 0);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  const RequestLimits& limits() const { return limits_; }

  // Queues a request under a caller-chosen unique key. Validates it (see
  // validate_request) and honours max_waiting (QueueFull).
  ValidationResult add_request(uint64_t key, GenerationRequest request);
  // Finishes every unfinished sample of the request (waiting or running) with
  // reason (Abort unless told otherwise) and frees its blocks. Unknown or
  // finished keys give no deliveries.
  std::vector<Delivery> abort_request(uint64_t key, FinishReason reason = FinishReason::Abort,
                                      const std::string& error = {});
  std::vector<Delivery> abort_all(FinishReason reason = FinishReason::Abort, const std::string& error = {});
  // Finishes one sample of the request (Abort unless told otherwise) and
  // frees its blocks; the other samples continue. Unknown keys, indices out
  // of range and finished samples give no deliveries.
  std::vector<Delivery> abort_sample(uint64_t key, int index, FinishReason reason = FinishReason::Abort,
                                     const std::string& error = {});

  SchedulerStep schedule();
  // logits: batch.logits_indices.size() rows of vocab_size values.
  std::vector<Delivery> update(const SchedulerStep& step, std::span<const float> logits);
  // For greedy_only steps: tokens[r] is the argmax (lowest id on ties) of logits row r.
  std::vector<Delivery> update_with_tokens(const SchedulerStep& step, std::span<const int32_t> tokens);
  // The backend failed on this step: its requests finish with Error.
  std::vector<Delivery> fail_step(const SchedulerStep& step, const std::string& message);

  // Samples the rows of a step on this pool's threads (nullptr: the caller's
  // thread). The pool must outlive the scheduler or be reset first.
  void set_sampling_pool(ThreadPool* pool) { sampling_pool_ = pool; }

  bool has_unfinished() const { return !requests_.empty(); }
  bool has_request(uint64_t key) const { return requests_.count(key) != 0; }
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_unadmitted() const { return num_unadmitted_; }
  int num_requests() const { return static_cast<int>(requests_.size()); }
  EngineStats stats() const;
  const BlockPool& block_pool() const { return pool_; }

  // Throws nibble::Error when bookkeeping is inconsistent: a block owned by
  // no one yet referenced, refcounts that differ from the block tables, a
  // sequence in two queues... Tests call it after every step.
  void check_invariants() const;

 private:
  struct Request;
  struct Sequence;

  Sequence* find_sequence(uint64_t seq_id) const;
  // Running-set slots: an unforked request reserves one per sample not yet finished.
  int slots_needed(const Sequence& seq) const;
  int running_slots() const;
  bool try_schedule_running(Sequence& seq, int& budget, SchedulerStep& step, bool& preempted);
  bool try_admit_waiting(Sequence& seq, int& budget, int& slots, SchedulerStep& step);
  void add_to_step(Sequence& seq, int num_new, SchedulerStep& step);
  const BlockHash& block_hash(Sequence& seq, int block_index);
  void cache_computed_blocks(Sequence& seq);
  void preempt(Sequence& seq);
  void release_blocks(Sequence& seq);
  struct SampleJob {
    Sequence* seq;
    int row;
    int32_t token;
    TokenLogprob logprob;
  };
  void fork(Sequence& parent, int logits_row);
  void collect_jobs(const SchedulerStep& step);
  void sample_jobs(std::span<const float> logits);
  std::vector<Delivery> append_jobs();
  SampleInput sample_input(const Sequence& seq, std::span<const float> row) const;
  bool samples_by_plain_argmax(const Sequence& seq) const;
  void append_token(Sequence& seq, int32_t token, TokenLogprob&& logprob, std::vector<Delivery>& out);
  void finish(Sequence& seq, FinishReason reason, RequestOutput& output);
  // Marks a sample that has no sequence of its own (not forked yet) finished.
  void finish_unforked(Request& request, int index, FinishReason reason, RequestOutput& output);
  // Hands an unforked request's prefill from its cancelled sample to the first live one.
  void reassign_prefill(Sequence& parent);
  RequestOutput new_output(const Request& request, int index) const;
  void drop_request_if_done(Request& request);

  SchedulerConfig config_;
  RequestLimits limits_;
  int block_size_;
  BlockPool pool_;
  Sampler sampler_;
  ThreadPool* sampling_pool_ = nullptr;
  std::vector<Sampler> chunk_samplers_;
  std::vector<SampleJob> jobs_;  // this step's samples, in delivery order
  std::mt19937_64 seed_source_;

  uint64_t next_seq_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Request>> requests_;
  std::unordered_map<uint64_t, std::unique_ptr<Sequence>> sequences_;
  std::vector<Sequence*> running_;  // admission order; preemption victims come from the back
  std::deque<Sequence*> waiting_;   // first come first served; preempted ones go to the front
  std::vector<int32_t> eos_ids_;
  std::vector<int32_t> hits_;  // scratch for prefix-cache lookups
  int num_unadmitted_ = 0;     // requests queued but never admitted (max_waiting)

  EngineStats counters_;
};

}  // namespace nibble
