#pragma once
// Helpers shared by the scheduler tests: an independent reference of what a
// request must generate (no paging, no batching) and a driver that steps a
// Scheduler over a FakeBackend, collecting deliveries and checking
// invariants after every step.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fake_backend.h"
#include "nibble/engine/sampler.h"
#include "nibble/scheduler/scheduler.h"

namespace nibble::testing {

struct Expected {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::Length;
};

// What sample `index` of request r generates when run alone; seed is the
// request's seed (the sample uses seed + index).
inline Expected generate_alone(const GenerationRequest& r, int index, uint64_t seed, const std::vector<int32_t>& eos,
                               int vocab, int max_model_len) {
  Expected e;
  std::vector<int32_t> tokens = r.prompt;
  std::vector<int32_t> suppressed;
  if (!r.stop.ignore_eos) suppressed = eos;
  suppressed.insert(suppressed.end(), r.stop.stop_token_ids.begin(), r.stop.stop_token_ids.end());
  Sampler sampler;
  std::vector<float> logits;
  auto is_in = [](const std::vector<int32_t>& v, int32_t t) { return std::find(v.begin(), v.end(), t) != v.end(); };
  for (;;) {
    FakeBackend::reference_logits(tokens, vocab, logits);
    SampleInput in;
    in.logits = logits;
    in.params = &r.sampling;
    in.prompt_tokens = std::span(tokens).first(r.prompt.size());
    in.output_tokens = std::span(tokens).subspan(r.prompt.size());
    const int num_out = static_cast<int>(e.tokens.size());
    if (num_out < r.stop.min_tokens) in.suppressed_tokens = suppressed;
    in.seed = seed + static_cast<uint64_t>(index);
    int32_t t = sampler.sample(in).token;
    tokens.push_back(t);
    e.tokens.push_back(t);
    if (num_out >= r.stop.min_tokens && ((!r.stop.ignore_eos && is_in(eos, t)) || is_in(r.stop.stop_token_ids, t))) {
      e.finish = FinishReason::Stop;
      return e;
    }
    if (num_out + 1 >= r.stop.max_tokens || static_cast<int>(tokens.size()) >= max_model_len) {
      e.finish = FinishReason::Length;
      return e;
    }
  }
}

struct Collected {
  int n = 1;
  std::vector<std::vector<int32_t>> tokens;
  std::vector<int> finishes;  // count of finish deliveries per sample (must end at exactly 1)
  std::vector<std::optional<FinishReason>> reason;
  std::vector<bool> by_stop_token;
  std::vector<std::string> errors;
  int cached_prompt_tokens = -1;
  bool all_finished() const {
    for (int f : finishes) {
      if (f != 1) return false;
    }
    return true;
  }
};

class Driver {
 public:
  Driver(Backend& backend, const SchedulerConfig& config, int max_model_len = 4096)
      : sched(config, backend.kv_cache_shape(), backend.config().vocab_size, max_model_len), backend_(backend) {}

  ValidationResult add(uint64_t key, const GenerationRequest& r) {
    ValidationResult v = sched.add_request(key, r);
    if (v.ok()) {
      Collected& c = results[key];
      c.n = r.n;
      c.tokens.assign(r.n, {});
      c.finishes.assign(r.n, 0);
      c.reason.assign(r.n, std::nullopt);
      c.by_stop_token.assign(r.n, false);
      c.errors.assign(r.n, {});
    }
    return v;
  }

  void deliver(const std::vector<Delivery>& deliveries) {
    for (const auto& d : deliveries) {
      auto it = results.find(d.request_key);
      ASSERT_NE(it, results.end()) << "delivery for unknown request " << d.request_key;
      Collected& c = it->second;
      const auto& o = d.output;
      ASSERT_GE(o.index, 0);
      ASSERT_LT(o.index, c.n);
      ASSERT_EQ(c.finishes[o.index], 0) << "delivery after finish for request " << d.request_key;
      c.tokens[o.index].insert(c.tokens[o.index].end(), o.new_tokens.begin(), o.new_tokens.end());
      c.cached_prompt_tokens = o.cached_prompt_tokens;
      if (o.finish) {
        ++c.finishes[o.index];
        c.reason[o.index] = o.finish;
        c.by_stop_token[o.index] = o.finished_by_stop_token;
        c.errors[o.index] = o.error;
      }
    }
  }

  SchedulerStep step() {
    SchedulerStep s = sched.schedule();
    if (!s.empty()) {
      backend_.forward(s.batch, logits_);
      deliver(sched.update(s, logits_));
    }
    sched.check_invariants();
    return s;
  }

  void abort(uint64_t key) {
    deliver(sched.abort_request(key));
    sched.check_invariants();
  }

  // Returns the deliveries (also collected into results).
  std::vector<Delivery> abort_sample(uint64_t key, int index) {
    std::vector<Delivery> out = sched.abort_sample(key, index);
    deliver(out);
    sched.check_invariants();
    return out;
  }

  // Steps until no request is left (fails the test after max_steps).
  int run(int max_steps = 100000) {
    int steps = 0;
    while (sched.has_unfinished()) {
      SchedulerStep s = step();
      EXPECT_FALSE(s.empty()) << "no progress with " << sched.num_requests() << " requests left";
      if (s.empty() || ++steps > max_steps) break;
    }
    return steps;
  }

  Scheduler sched;
  std::map<uint64_t, Collected> results;

 private:
  Backend& backend_;
  std::vector<float> logits_;
};

}  // namespace nibble::testing
