#include "nibble/scheduler/scheduler.h"

#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "nibble/core/error.h"
#include "nibble/core/thread_pool.h"

namespace nibble {

struct Scheduler::Request {
  uint64_t key = 0;
  GenerationRequest params;
  uint64_t base_seed = 0;
  std::vector<Sequence*> samples;  // [n]; samples 1.. exist once sample 0 forked
  std::vector<uint8_t> done;       // [n]; finish delivered
  int num_done = 0;
  bool forked = false;    // true from the start when n == 1
  bool admitted = false;  // first admission counted (prefix-cache stats)
  int cached_prompt_tokens = 0;
  std::vector<int32_t> min_tokens_suppressed;  // EOS (unless ignore_eos) + stop_token_ids
};

struct Scheduler::Sequence {
  enum class State { Waiting, Running, Finished };
  uint64_t id = 0;
  Request* request = nullptr;
  int index = 0;
  std::vector<int32_t> tokens;  // prompt + generated
  int num_prompt = 0;
  int num_computed = 0;
  std::vector<int32_t> blocks;
  std::vector<BlockHash> hashes;  // of the leading full blocks of tokens, filled lazily
  int num_cached_blocks = 0;      // leading blocks already offered to the prefix cache
  State state = State::Waiting;
  uint64_t seed = 0;
};

namespace {

int blocks_for(int tokens, int block_size) { return (tokens + block_size - 1) / block_size; }

bool contains(const std::vector<int32_t>& ids, int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

}  // namespace

Scheduler::Scheduler(const SchedulerConfig& config, KvCacheShape kv, int vocab_size, int max_model_len, uint64_t seed)
    : config_(config),
      block_size_(kv.block_size),
      pool_(kv.num_blocks, kv.block_size, config.enable_prefix_caching),
      seed_source_(seed),
      eos_ids_(config.eos_token_ids) {
  NIBBLE_CHECK(vocab_size > 0, fmt::format("scheduler: vocab_size must be positive, got {}", vocab_size));
  NIBBLE_CHECK(max_model_len > 0, fmt::format("scheduler: max_model_len must be positive, got {}", max_model_len));
  NIBBLE_CHECK(config.max_num_seqs > 0,
               fmt::format("scheduler: max_num_seqs must be positive, got {}", config.max_num_seqs));
  NIBBLE_CHECK(config.max_num_batched_tokens > 0,
               fmt::format("scheduler: max_num_batched_tokens must be positive, got {}", config.max_num_batched_tokens));
  // Otherwise a full running set could not decode in one step and the
  // sequences at its tail would wait for those ahead of them to finish.
  NIBBLE_CHECK(config.max_num_batched_tokens >= config.max_num_seqs,
               fmt::format("scheduler: max_num_batched_tokens ({}) must be at least max_num_seqs ({})",
                           config.max_num_batched_tokens, config.max_num_seqs));
  limits_ = {max_model_len, vocab_size, kv.num_blocks, kv.block_size, config.max_num_seqs};
  counters_.kv_blocks_total = kv.num_blocks;
}

Scheduler::~Scheduler() = default;

Scheduler::Sequence* Scheduler::find_sequence(uint64_t seq_id) const {
  auto it = sequences_.find(seq_id);
  return it == sequences_.end() ? nullptr : it->second.get();
}

ValidationResult Scheduler::add_request(uint64_t key, GenerationRequest request) {
  if (requests_.count(key)) return {SubmitStatus::Invalid, fmt::format("request key {} is already in use", key)};
  ValidationResult valid = validate_request(request, limits_);
  if (!valid.ok()) return valid;
  if (num_unadmitted_ >= config_.max_waiting) {
    return {SubmitStatus::QueueFull,
            fmt::format("the server is busy: {} requests are already waiting", num_unadmitted_)};
  }
  auto req = std::make_unique<Request>();
  req->key = key;
  req->base_seed = request.sampling.seed.has_value() ? *request.sampling.seed : seed_source_();
  req->forked = request.n == 1;
  req->samples.assign(request.n, nullptr);
  req->done.assign(request.n, 0);
  if (!request.stop.ignore_eos) req->min_tokens_suppressed = eos_ids_;
  for (int32_t id : request.stop.stop_token_ids) {
    if (!contains(req->min_tokens_suppressed, id)) req->min_tokens_suppressed.push_back(id);
  }
  req->params = std::move(request);

  auto seq = std::make_unique<Sequence>();
  seq->id = next_seq_id_++;
  seq->request = req.get();
  seq->tokens = req->params.prompt;
  seq->num_prompt = static_cast<int>(seq->tokens.size());
  seq->seed = req->base_seed;
  req->samples[0] = seq.get();
  waiting_.push_back(seq.get());
  sequences_.emplace(seq->id, std::move(seq));
  requests_.emplace(key, std::move(req));
  ++num_unadmitted_;
  return valid;
}

RequestOutput Scheduler::new_output(const Request& req, int index) const {
  RequestOutput out;
  out.index = index;
  out.prompt_tokens = static_cast<int>(req.params.prompt.size());
  out.cached_prompt_tokens = req.cached_prompt_tokens;
  return out;
}

void Scheduler::release_blocks(Sequence& seq) {
  // Last blocks first: they join the free list ahead of the prefix blocks and
  // are evicted sooner, which keeps shared prefixes cached longer.
  for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) pool_.release(*it);
  seq.blocks.clear();
  seq.num_cached_blocks = 0;
}

void Scheduler::finish(Sequence& seq, FinishReason reason, RequestOutput& output) {
  output.finish = reason;
  release_blocks(seq);
  if (seq.state == Sequence::State::Running) {
    running_.erase(std::find(running_.begin(), running_.end(), &seq));
  } else if (seq.state == Sequence::State::Waiting) {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &seq));
    if (!seq.request->admitted) --num_unadmitted_;
  }
  seq.state = Sequence::State::Finished;
  Request& req = *seq.request;
  req.done[seq.index] = 1;
  ++req.num_done;
}

void Scheduler::drop_request_if_done(Request& req) {
  if (req.num_done < static_cast<int>(req.done.size())) return;
  for (Sequence* s : req.samples) {
    if (s) sequences_.erase(s->id);
  }
  requests_.erase(req.key);
}

std::vector<Delivery> Scheduler::abort_request(uint64_t key, FinishReason reason, const std::string& error) {
  std::vector<Delivery> out;
  auto it = requests_.find(key);
  if (it == requests_.end()) return out;
  Request& req = *it->second;
  for (int index = 0; index < static_cast<int>(req.done.size()); ++index) {
    if (req.done[index]) continue;
    RequestOutput output = new_output(req, index);
    output.error = error;
    if (req.samples[index]) {
      finish(*req.samples[index], reason, output);
    } else {
      finish_unforked(req, index, reason, output);
    }
    out.push_back({key, std::move(output)});
  }
  drop_request_if_done(req);
  return out;
}

void Scheduler::finish_unforked(Request& req, int index, FinishReason reason, RequestOutput& output) {
  output.finish = reason;
  req.done[index] = 1;
  ++req.num_done;
}

void Scheduler::reassign_prefill(Sequence& parent) {
  Request& req = *parent.request;
  const int n = static_cast<int>(req.done.size());
  int next = 0;
  while (next < n && (req.done[next] || next == parent.index)) ++next;
  NIBBLE_CHECK(next < n, "scheduler: no live sample left to take over the prefill");
  // The parent has sampled nothing yet, so it can become any sample: only the seed differs.
  req.samples[parent.index] = nullptr;
  parent.index = next;
  parent.seed = req.base_seed + static_cast<uint64_t>(next);
  req.samples[next] = &parent;
}

std::vector<Delivery> Scheduler::abort_sample(uint64_t key, int index, FinishReason reason, const std::string& error) {
  std::vector<Delivery> out;
  auto it = requests_.find(key);
  if (it == requests_.end()) return out;
  Request& req = *it->second;
  if (index < 0 || index >= static_cast<int>(req.done.size()) || req.done[index]) return out;
  RequestOutput output = new_output(req, index);
  output.error = error;
  Sequence* seq = req.samples[index];
  const int live = static_cast<int>(req.done.size()) - req.num_done;
  if (seq && !req.forked && live > 1) {
    reassign_prefill(*seq);  // the other samples still need the prompt's prefill
    seq = nullptr;
  }
  if (seq) {
    finish(*seq, reason, output);
  } else {
    finish_unforked(req, index, reason, output);
  }
  out.push_back({key, std::move(output)});
  drop_request_if_done(req);
  return out;
}

std::vector<Delivery> Scheduler::abort_all(FinishReason reason, const std::string& error) {
  std::vector<uint64_t> keys;
  for (const auto& [key, req] : requests_) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  std::vector<Delivery> out;
  for (uint64_t key : keys) {
    auto part = abort_request(key, reason, error);
    out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return out;
}

const BlockHash& Scheduler::block_hash(Sequence& seq, int block_index) {
  while (static_cast<int>(seq.hashes.size()) <= block_index) {
    const int i = static_cast<int>(seq.hashes.size());
    const BlockHash& parent = i == 0 ? kRootBlockHash : seq.hashes.back();
    seq.hashes.push_back(hash_block(parent, std::span(seq.tokens).subspan(static_cast<size_t>(i) * block_size_, block_size_)));
  }
  return seq.hashes[block_index];
}

void Scheduler::cache_computed_blocks(Sequence& seq) {
  if (!pool_.caching_enabled()) return;
  const int full = seq.num_computed / block_size_;
  for (int i = seq.num_cached_blocks; i < full; ++i) {
    pool_.cache_block(seq.blocks[i], block_hash(seq, i),
                      std::span(seq.tokens).subspan(static_cast<size_t>(i) * block_size_, block_size_));
  }
  seq.num_cached_blocks = std::max(seq.num_cached_blocks, full);
}

void Scheduler::preempt(Sequence& seq) {
  release_blocks(seq);
  seq.num_computed = 0;
  seq.state = Sequence::State::Waiting;
  waiting_.push_front(&seq);
  ++counters_.preemptions;
}

int Scheduler::running_slots() const {
  int slots = 0;
  for (const Sequence* seq : running_) slots += slots_needed(*seq);
  return slots;
}

int Scheduler::slots_needed(const Sequence& seq) const {
  const Request& req = *seq.request;
  return req.forked ? 1 : static_cast<int>(req.done.size()) - req.num_done;
}

void Scheduler::add_to_step(Sequence& seq, int num_new, SchedulerStep& step) {
  Batch& b = step.batch;
  const int start = seq.num_computed;
  for (int j = 0; j < num_new; ++j) {
    b.token_ids.push_back(seq.tokens[start + j]);
    b.positions.push_back(start + j);
  }
  b.query_start.push_back(static_cast<int32_t>(b.token_ids.size()));
  const int seq_len = start + num_new;
  b.seq_lens.push_back(seq_len);
  const int nblocks = blocks_for(seq_len, block_size_);
  b.kv_indices.insert(b.kv_indices.end(), seq.blocks.begin(), seq.blocks.begin() + nblocks);
  b.kv_indptr.push_back(static_cast<int32_t>(b.kv_indices.size()));
  b.kv_last_block_len.push_back(seq_len - (nblocks - 1) * block_size_);

  ScheduledSequence s{seq.id, seq.request->key, num_new, -1};
  if (seq_len == static_cast<int>(seq.tokens.size())) {
    s.logits_row = static_cast<int>(b.logits_indices.size());
    b.logits_indices.push_back(static_cast<int32_t>(b.token_ids.size()) - 1);
    step.greedy_only = step.greedy_only && samples_by_plain_argmax(seq);
  }
  step.sequences.push_back(s);
}

bool Scheduler::try_schedule_running(Sequence& seq, int& budget, SchedulerStep& step, bool& preempted) {
  const int num_new = std::min(static_cast<int>(seq.tokens.size()) - seq.num_computed, budget);
  const int need = blocks_for(seq.num_computed + num_new, block_size_) - static_cast<int>(seq.blocks.size());
  while (need > pool_.num_free()) {
    Sequence* victim = running_.back();
    running_.pop_back();
    preempt(*victim);
    preempted = true;
    if (victim == &seq) return false;
  }
  for (int i = 0; i < need; ++i) seq.blocks.push_back(pool_.allocate());
  add_to_step(seq, num_new, step);
  budget -= num_new;
  return true;
}

bool Scheduler::try_admit_waiting(Sequence& seq, int& budget, int& slots, SchedulerStep& step) {
  const int needed_slots = slots_needed(seq);
  if (slots + needed_slots > config_.max_num_seqs) return false;
  const int len = static_cast<int>(seq.tokens.size());
  hits_.clear();
  if (pool_.caching_enabled()) {
    const int max_hits = (len - 1) / block_size_;  // the last token is always computed
    for (int i = 0; i < max_hits; ++i) {
      auto block = pool_.lookup(block_hash(seq, i),
                                std::span(seq.tokens).subspan(static_cast<size_t>(i) * block_size_, block_size_));
      if (!block) break;
      hits_.push_back(*block);
    }
  }
  const int computed = static_cast<int>(hits_.size()) * block_size_;
  const int num_new = std::min(len - computed, budget);
  const int need_new = blocks_for(computed + num_new, block_size_) - static_cast<int>(hits_.size());
  const int free_hits = static_cast<int>(std::count_if(hits_.begin(), hits_.end(), [&](int32_t b) { return pool_.refcount(b) == 0; }));
  if (need_new + free_hits > pool_.num_free()) return false;

  waiting_.pop_front();
  for (int32_t b : hits_) pool_.retain(b);
  seq.blocks = hits_;
  seq.num_cached_blocks = static_cast<int>(hits_.size());
  for (int i = 0; i < need_new; ++i) seq.blocks.push_back(pool_.allocate());
  seq.num_computed = computed;
  seq.state = Sequence::State::Running;
  running_.push_back(&seq);
  slots += needed_slots;

  Request& req = *seq.request;
  if (!req.admitted) {
    req.admitted = true;
    --num_unadmitted_;
    req.cached_prompt_tokens = std::min(computed, seq.num_prompt);
    counters_.prompt_tokens += seq.num_prompt;
    counters_.prefix_cache_queries += seq.num_prompt;
    counters_.prefix_cache_hits += req.cached_prompt_tokens;
  }
  add_to_step(seq, num_new, step);
  budget -= num_new;
  return true;
}

SchedulerStep Scheduler::schedule() {
  SchedulerStep step;
  step.batch.query_start.push_back(0);
  step.batch.kv_indptr.push_back(0);
  int budget = config_.max_num_batched_tokens;
  bool preempted = false;
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    if (!try_schedule_running(*running_[i], budget, step, preempted)) break;
  }
  if (!preempted) {
    int slots = running_slots();
    while (!waiting_.empty() && budget > 0) {
      if (!try_admit_waiting(*waiting_.front(), budget, slots, step)) break;
    }
  }
  return step;
}

SampleInput Scheduler::sample_input(const Sequence& seq, std::span<const float> row) const {
  const Request& req = *seq.request;
  const int num_out = static_cast<int>(seq.tokens.size()) - seq.num_prompt;
  SampleInput input;
  input.logits = row;
  input.params = &req.params.sampling;
  input.prompt_tokens = std::span(seq.tokens).first(seq.num_prompt);
  input.output_tokens = std::span(seq.tokens).subspan(seq.num_prompt);
  if (num_out < req.params.stop.min_tokens) input.suppressed_tokens = req.min_tokens_suppressed;
  input.seed = seq.seed;
  return input;
}

bool Scheduler::samples_by_plain_argmax(const Sequence& seq) const {
  const Request& req = *seq.request;
  const SamplingParams& p = req.params.sampling;
  const int num_out = static_cast<int>(seq.tokens.size()) - seq.num_prompt;
  const bool suppressing = num_out < req.params.stop.min_tokens && !req.min_tokens_suppressed.empty();
  return p.temperature <= 0.0 && !p.logprobs && p.logit_bias.empty() && p.repetition_penalty == 1.0 &&
         p.presence_penalty == 0.0 && p.frequency_penalty == 0.0 && !suppressing;
}

void Scheduler::append_token(Sequence& seq, int32_t token, TokenLogprob&& logprob, std::vector<Delivery>& out) {
  Request& req = *seq.request;
  const StopParams& stop = req.params.stop;
  const int num_out = static_cast<int>(seq.tokens.size()) - seq.num_prompt;
  seq.tokens.push_back(token);
  ++counters_.generation_tokens;
  RequestOutput output = new_output(req, seq.index);
  output.new_tokens.push_back(token);
  if (req.params.sampling.logprobs) output.logprobs.push_back(std::move(logprob));

  const bool stop_token = num_out >= stop.min_tokens &&
                          ((!stop.ignore_eos && contains(eos_ids_, token)) || contains(stop.stop_token_ids, token));
  if (stop_token) {
    output.finished_by_stop_token = true;
    finish(seq, FinishReason::Stop, output);
  } else if (num_out + 1 >= stop.max_tokens || static_cast<int>(seq.tokens.size()) >= limits_.max_model_len) {
    finish(seq, FinishReason::Length, output);
  }
  out.push_back({req.key, std::move(output)});
  drop_request_if_done(req);
}

void Scheduler::fork(Sequence& parent, int logits_row) {
  Request& req = *parent.request;
  req.forked = true;
  // Full prompt blocks are shared; the partial last one is recomputed by each sample.
  const int shared = parent.num_prompt / block_size_;
  for (int index = 0; index < static_cast<int>(req.samples.size()); ++index) {
    if (req.samples[index] || req.done[index]) continue;  // the parent itself, or cancelled before the fork
    auto child = std::make_unique<Sequence>();
    child->id = next_seq_id_++;
    child->request = &req;
    child->index = index;
    child->tokens.assign(parent.tokens.begin(), parent.tokens.begin() + parent.num_prompt);
    child->num_prompt = parent.num_prompt;
    child->blocks.assign(parent.blocks.begin(), parent.blocks.begin() + shared);
    for (int32_t b : child->blocks) pool_.retain(b);
    child->hashes.assign(parent.hashes.begin(), parent.hashes.begin() + std::min<size_t>(shared, parent.hashes.size()));
    child->num_cached_blocks = std::min(parent.num_cached_blocks, shared);
    child->num_computed = shared * block_size_;
    child->state = Sequence::State::Running;
    child->seed = req.base_seed + static_cast<uint64_t>(index);
    Sequence& ref = *child;
    req.samples[index] = &ref;
    running_.push_back(&ref);
    sequences_.emplace(ref.id, std::move(child));
    jobs_.push_back({&ref, logits_row, 0, {}});  // its first token comes from the parent's logits
  }
}

void Scheduler::collect_jobs(const SchedulerStep& step) {
  jobs_.clear();
  for (const ScheduledSequence& s : step.sequences) {
    Sequence* seq = find_sequence(s.seq_id);
    if (!seq || seq->state != Sequence::State::Running) continue;  // aborted meanwhile
    seq->num_computed += s.num_new_tokens;
    cache_computed_blocks(*seq);
    if (s.logits_row < 0) continue;
    if (!seq->request->forked) fork(*seq, s.logits_row);
    jobs_.push_back({seq, s.logits_row, 0, {}});
  }
}

std::vector<Delivery> Scheduler::append_jobs() {
  std::vector<Delivery> out;
  for (SampleJob& job : jobs_) append_token(*job.seq, job.token, std::move(job.logprob), out);
  jobs_.clear();
  return out;
}

void Scheduler::sample_jobs(std::span<const float> logits) {
  const size_t vocab = static_cast<size_t>(limits_.vocab_size);
  auto run = [&](size_t begin, size_t end, Sampler& sampler) {
    for (size_t i = begin; i < end; ++i) {
      SampleJob& job = jobs_[i];
      SampleResult r = sampler.sample(sample_input(*job.seq, logits.subspan(static_cast<size_t>(job.row) * vocab, vocab)));
      job.token = r.token;
      job.logprob = std::move(r.logprob);
    }
  };
  const size_t n = jobs_.size();
  if (!sampling_pool_ || sampling_pool_->size() < 2 || n < 4) {
    run(0, n, sampler_);
    return;
  }
  // One Sampler per chunk, so no two threads share scratch buffers; the
  // tokens do not depend on the split (the RNG is counter-based).
  const size_t chunks = std::min(n, sampling_pool_->size());
  if (chunk_samplers_.size() < chunks) chunk_samplers_.resize(chunks);
  sampling_pool_->parallel_for(chunks, [&](size_t first, size_t last) {
    for (size_t c = first; c < last; ++c) run(c * n / chunks, (c + 1) * n / chunks, chunk_samplers_[c]);
  });
}

std::vector<Delivery> Scheduler::update(const SchedulerStep& step, std::span<const float> logits) {
  const size_t vocab = static_cast<size_t>(limits_.vocab_size);
  NIBBLE_CHECK(logits.size() >= step.batch.logits_indices.size() * vocab,
               fmt::format("scheduler: the backend returned {} logits for {} rows of vocab {}", logits.size(),
                           step.batch.logits_indices.size(), vocab));
  collect_jobs(step);
  sample_jobs(logits);
  return append_jobs();
}

std::vector<Delivery> Scheduler::update_with_tokens(const SchedulerStep& step, std::span<const int32_t> tokens) {
  NIBBLE_CHECK(step.greedy_only, "scheduler: update_with_tokens needs a step whose samples are all plain argmax");
  NIBBLE_CHECK(tokens.size() == step.batch.logits_indices.size(),
               fmt::format("scheduler: the backend returned {} tokens for {} rows", tokens.size(),
                           step.batch.logits_indices.size()));
  collect_jobs(step);
  for (SampleJob& job : jobs_) {
    const int32_t t = tokens[job.row];
    NIBBLE_CHECK(t >= 0 && t < limits_.vocab_size, fmt::format("scheduler: the backend sampled token {} outside the vocabulary", t));
    job.token = t;
  }
  return append_jobs();
}

std::vector<Delivery> Scheduler::fail_step(const SchedulerStep& step, const std::string& message) {
  std::vector<Delivery> out;
  for (const ScheduledSequence& s : step.sequences) {
    auto part = abort_request(s.request_key, FinishReason::Error, message);
    out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return out;
}

EngineStats Scheduler::stats() const {
  EngineStats s = counters_;
  s.running = static_cast<int>(running_.size());
  s.waiting = static_cast<int>(waiting_.size());
  s.kv_blocks_total = pool_.num_blocks();
  s.kv_blocks_used = pool_.num_used();
  return s;
}

void Scheduler::check_invariants() const {
  pool_.check_invariants();
  std::vector<int> owners(pool_.num_blocks(), 0);
  size_t live = 0;
  for (const auto& [id, holder] : sequences_) {
    const Sequence& seq = *holder;
    const std::string name = fmt::format("sequence {} (request {}, sample {})", id, seq.request->key, seq.index);
    NIBBLE_CHECK(requests_.count(seq.request->key), name + " outlived its request");
    NIBBLE_CHECK(seq.request->samples[seq.index] == &seq, name + " is not registered with its request");
    const auto in_running = std::count(running_.begin(), running_.end(), &seq);
    const auto in_waiting = std::count(waiting_.begin(), waiting_.end(), &seq);
    switch (seq.state) {
      case Sequence::State::Running:
        NIBBLE_CHECK(in_running == 1 && in_waiting == 0, name + " is running but not exactly once in the running list");
        NIBBLE_CHECK(seq.num_computed <= static_cast<int>(seq.tokens.size()), name + " computed more tokens than it has");
        NIBBLE_CHECK(static_cast<int>(seq.blocks.size()) >= blocks_for(seq.num_computed, block_size_),
                     name + " has fewer blocks than its computed tokens need");
        ++live;
        break;
      case Sequence::State::Waiting:
        NIBBLE_CHECK(in_waiting == 1 && in_running == 0, name + " is waiting but not exactly once in the waiting queue");
        NIBBLE_CHECK(seq.blocks.empty() && seq.num_computed == 0, name + " waits while holding blocks");
        ++live;
        break;
      case Sequence::State::Finished:
        NIBBLE_CHECK(in_waiting == 0 && in_running == 0, name + " is finished but still queued");
        NIBBLE_CHECK(seq.blocks.empty(), name + " is finished but holds blocks");
        NIBBLE_CHECK(seq.request->done[seq.index], name + " finished without delivering its finish");
        break;
    }
    std::vector<int32_t> sorted = seq.blocks;
    std::sort(sorted.begin(), sorted.end());
    NIBBLE_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(), name + " holds a block twice");
    for (int32_t b : seq.blocks) {
      NIBBLE_CHECK(b >= 0 && b < pool_.num_blocks(), name + " holds an invalid block id");
      ++owners[b];
    }
  }
  NIBBLE_CHECK(live == running_.size() + waiting_.size(), "scheduler: queues hold sequences that are not live");
  NIBBLE_CHECK(running_slots() <= config_.max_num_seqs,
               "scheduler: running sequences (with the samples reserved for unforked requests) exceed max_num_seqs");
  for (int32_t b = 0; b < pool_.num_blocks(); ++b) {
    NIBBLE_CHECK(owners[b] == pool_.refcount(b),
                 fmt::format("KV block {} has refcount {} but {} block tables hold it", b, pool_.refcount(b), owners[b]));
  }
  // A block shared by several tables must be full and computed for each of
  // them: nobody may write into a shared block.
  for (const auto& [id, holder] : sequences_) {
    const Sequence& seq = *holder;
    for (size_t i = 0; i < seq.blocks.size(); ++i) {
      if (pool_.refcount(seq.blocks[i]) > 1) {
        NIBBLE_CHECK(static_cast<int>(i + 1) * block_size_ <= seq.num_computed,
                     fmt::format("sequence {} shares block {} (index {}) that it will still write", id, seq.blocks[i], i));
      }
    }
  }
  int unadmitted = 0;
  for (const auto& [key, req] : requests_) {
    if (!req->admitted) ++unadmitted;
    if (req->forked) continue;
    // Before the fork one live sample carries the prefill and no other has a sequence.
    const auto carriers = std::count_if(req->samples.begin(), req->samples.end(), [](const Sequence* s) { return s; });
    NIBBLE_CHECK(carriers == 1, fmt::format("scheduler: unforked request {} has {} sequences", key, carriers));
    for (size_t i = 0; i < req->samples.size(); ++i) {
      NIBBLE_CHECK(!req->samples[i] || !req->done[i],
                   fmt::format("scheduler: unforked request {} prefills for finished sample {}", key, i));
    }
  }
  NIBBLE_CHECK(unadmitted == num_unadmitted_, "scheduler: unadmitted-request count drifted");
}

}  // namespace nibble
