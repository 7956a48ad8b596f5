// Scheduling cost per step with many running requests and a busy waiting
// queue. No model: the logits are a fixed random buffer, so the numbers are
// the scheduler's own bookkeeping (schedule(): batch building, block
// allocation; update(): greedy pick over a small vocab, stop checks,
// prefix-cache hashing of filled blocks, deliveries).
//
//   bench_scheduler [running=256] [waiting=1024] [steps=2000] [prompt_len=512]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <span>
#include <vector>

#include "nibble/engine/sampler.h"
#include "nibble/scheduler/scheduler.h"

using namespace nibble;

int main(int argc, char** argv) {
  const int running = argc > 1 ? std::atoi(argv[1]) : 256;
  const int waiting = argc > 2 ? std::atoi(argv[2]) : 1024;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 2000;
  const int prompt_len = argc > 4 ? std::atoi(argv[4]) : 512;
  const int vocab = 64;
  const int block_size = 16;
  const int max_tokens = steps + 64;

  SchedulerConfig config;
  config.max_num_seqs = running;
  config.max_num_batched_tokens = 8192;
  config.max_waiting = waiting + running;
  KvCacheShape kv{running * ((prompt_len + max_tokens) / block_size + 2), block_size};
  Scheduler scheduler(config, kv, vocab, prompt_len + max_tokens + 16, 1);

  auto add = [&](uint64_t key) {
    GenerationRequest r;
    r.prompt.resize(prompt_len);
    for (int i = 0; i < prompt_len; ++i) r.prompt[i] = static_cast<int32_t>(splitmix64(key * 131 + i) % vocab);
    r.stop.max_tokens = max_tokens;
    r.stop.ignore_eos = true;
    r.sampling.temperature = 0.0;  // greedy: keeps the sampler's own cost out of the number
    auto v = scheduler.add_request(key, std::move(r));
    if (!v.ok()) {
      std::fprintf(stderr, "add_request: %s\n", v.message.c_str());
      std::exit(1);
    }
  };
  std::vector<float> logits;
  auto fill_logits = [&](const SchedulerStep& s) {
    logits.resize(s.batch.logits_indices.size() * vocab);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(sampler_uniform(7, i) * 4.0);
  };

  for (int i = 0; i < running; ++i) add(static_cast<uint64_t>(i + 1));
  // Prefill until every request decodes.
  for (int guard = 0; guard < 10000; ++guard) {
    SchedulerStep s = scheduler.schedule();
    fill_logits(s);
    scheduler.update(s, logits);
    if (s.batch.num_tokens() == running) break;
  }
  for (int i = 0; i < waiting; ++i) add(static_cast<uint64_t>(running + i + 1));

  // Thread CPU time: the build machine is shared, wall time would measure the neighbours.
  struct clock {
    static std::chrono::nanoseconds now() {
      timespec ts;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
    }
  };
  double schedule_ns = 0, update_ns = 0;
  size_t tokens = 0;
  for (int step = 0; step < steps; ++step) {
    auto t0 = clock::now();
    SchedulerStep s = scheduler.schedule();
    auto t1 = clock::now();
    fill_logits(s);
    auto t2 = clock::now();
    scheduler.update(s, logits);
    auto t3 = clock::now();
    schedule_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    update_ns += std::chrono::duration<double, std::nano>(t3 - t2).count();
    tokens += s.batch.num_tokens();
  }
  EngineStats st = scheduler.stats();
  std::printf("scheduler bench: %d running, %d waiting, block_size %d, prompt %d, %d steps (%.1f tokens/step)\n",
              st.running, st.waiting, block_size, prompt_len, steps, static_cast<double>(tokens) / steps);
  std::printf("schedule(): %.1f us/step (thread CPU time)\n", schedule_ns / steps / 1000.0);
  std::printf("update():   %.1f us/step (greedy over vocab %d, stop checks, block hashing, deliveries)\n", update_ns / steps / 1000.0,
              vocab);

  // The sampler alone on a Llama-3-sized vocabulary, per token.
  const int big_vocab = 128256;
  std::vector<float> row(big_vocab);
  for (int i = 0; i < big_vocab; ++i) row[i] = static_cast<float>(sampler_uniform(3, i) * 12.0 - 6.0);
  std::vector<int32_t> history(600);
  for (size_t i = 0; i < history.size(); ++i) history[i] = static_cast<int32_t>(splitmix64(i) % big_vocab);
  struct Case {
    const char* name;
    SamplingParams params;
  };
  std::vector<Case> cases(6);
  cases[0].name = "greedy";
  cases[0].params.temperature = 0;
  cases[1].name = "temperature 0.8";
  cases[1].params.temperature = 0.8;
  cases[2].name = "top_k 50";
  cases[2].params.top_k = 50;
  cases[3].name = "top_p 0.9";
  cases[3].params.top_p = 0.9;
  cases[4].name = "top_p 0.9 + penalties";
  cases[4].params.top_p = 0.9;
  cases[4].params.repetition_penalty = 1.1;
  cases[4].params.frequency_penalty = 0.3;
  cases[5].name = "logprobs (top 5)";
  cases[5].params.logprobs = true;
  cases[5].params.top_logprobs = 5;
  Sampler sampler;
  for (const Case& c : cases) {
    const int reps = 50;
    auto t0 = clock::now();
    for (int r = 0; r < reps; ++r) {
      SampleInput in;
      in.logits = row;
      in.params = &c.params;
      in.prompt_tokens = std::span(history).first(500);
      in.output_tokens = std::span(history).subspan(500);
      in.seed = static_cast<uint64_t>(r);
      sampler.sample(in);
    }
    auto t1 = clock::now();
    std::printf("sampler, vocab %d, %-22s %.1f us/token\n", big_vocab, c.name,
                std::chrono::duration<double, std::micro>(t1 - t0).count() / reps);
  }
  return 0;
}
