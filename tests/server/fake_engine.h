#pragma once
// A fake EngineLoop for server tests: a real engine thread with a waiting
// queue, a running batch, KV block accounting, cancellation and draining, that
// "generates" byte tokens of words chosen by a seeded RNG (ByteTokenizer ids).
// A prompt containing "FAIL" fails after two tokens (FinishReason::Error).
// Same seed and prompt -> same tokens, whatever else runs. A request with n
// samples runs them as n sequences on one channel (sample i seeded seed + i);
// its prompt counts once in prompt_tokens.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "nibble/scheduler/engine_loop.h"

namespace nibble::fakes {

struct FakeEngineConfig {
  int max_num_seqs = 256;
  int max_waiting = 1024;
  int kv_blocks = 4096;
  int block_size = 16;
  int max_model_len = 2048;
  std::chrono::milliseconds step{2};
  int32_t eos_token = 257;
};

class FakeEngine : public EngineLoop {
 public:
  explicit FakeEngine(FakeEngineConfig config);
  ~FakeEngine() override;
  SubmitResult submit(GenerationRequest request) override;
  EngineStats stats() const override;
  int max_model_len() const override { return config_.max_model_len; }
  int max_samples_per_request() const override { return config_.max_num_seqs; }
  void shutdown(std::chrono::milliseconds drain_timeout) override;

  struct Sequence;

 private:
  void loop();
  void step_locked();

  FakeEngineConfig config_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Sequence>> waiting_;
  std::vector<std::shared_ptr<Sequence>> running_;
  EngineStats stats_;
  bool accepting_ = true;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace nibble::fakes
