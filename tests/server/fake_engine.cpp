#include "fake_engine.h"

#include <algorithm>
#include <random>
#include <string>

#include <fmt/format.h>

namespace nibble::fakes {

namespace {

const char* const kWords[] = {"the",   "quick", "brown", "fox",   "jumps", "over",         "lazy",  "dog",
                              "caf\xC3\xA9", "na\xC3\xAFve", "\xE6\x97\xA5\xE6\x9C\xAC", "\xF0\x9F\x98\x80",
                              "hello", "world", "alpha", "beta",  "gamma", "delta"};
constexpr int kNumWords = sizeof(kWords) / sizeof(kWords[0]);

uint64_t hash_prompt(const std::vector<int32_t>& prompt) {
  uint64_t h = 1469598103934665603ULL;
  for (int32_t t : prompt) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ULL;
  return h;
}

// A prompt containing this text makes the request fail mid-generation (tests of error paths).
bool prompt_contains(const std::vector<int32_t>& prompt, const std::string& text) {
  std::string bytes;
  for (int32_t t : prompt)
    if (t < 256) bytes += static_cast<char>(t);
  return bytes.find(text) != std::string::npos;
}

// One request's output channel, shared by its n samples.
class Channel : public RequestHandle {
 public:
  explicit Channel(int num_samples) : cancelled_(static_cast<size_t>(num_samples), 0), num_samples_(num_samples) {}
  std::optional<RequestOutput> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || num_done_ == num_samples_; });
    if (queue_.empty()) return std::nullopt;
    RequestOutput out = std::move(queue_.front());
    queue_.pop_front();
    return out;
  }
  void cancel() override {
    std::lock_guard lock(mutex_);
    std::fill(cancelled_.begin(), cancelled_.end(), 1);
  }
  void cancel_sample(int index) override {
    std::lock_guard lock(mutex_);
    if (index >= 0 && index < num_samples_) cancelled_[static_cast<size_t>(index)] = 1;
  }
  bool finished() const override {
    std::lock_guard lock(mutex_);
    return num_done_ == num_samples_ && queue_.empty();
  }
  void deliver(RequestOutput out) {
    std::lock_guard lock(mutex_);
    if (out.finish) ++num_done_;
    queue_.push_back(std::move(out));
    cv_.notify_all();
  }
  bool cancelled(int index) const {
    std::lock_guard lock(mutex_);
    return cancelled_[static_cast<size_t>(index)] != 0;
  }
  bool prompt_counted = false;  // engine thread only: the prompt is prefilled once for all samples

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<RequestOutput> queue_;
  std::vector<uint8_t> cancelled_;
  int num_samples_;
  int num_done_ = 0;
};

}  // namespace

struct FakeEngine::Sequence {
  GenerationRequest request;
  int index = 0;  // which of the request's n samples
  std::shared_ptr<Channel> channel;
  std::mt19937_64 rng;
  std::string pending_bytes;
  int generated = 0;
  int blocks = 0;
  bool done = false;
};

FakeEngine::FakeEngine(FakeEngineConfig config) : config_(config) {
  stats_.kv_blocks_total = config_.kv_blocks;
  thread_ = std::thread([this] { loop(); });
}

FakeEngine::~FakeEngine() { shutdown(std::chrono::milliseconds(0)); }

SubmitResult FakeEngine::submit(GenerationRequest request) {
  std::lock_guard lock(mutex_);
  if (!accepting_) return {SubmitStatus::ShuttingDown, "shutting down", nullptr};
  long long total = static_cast<long long>(request.prompt.size()) + request.stop.max_tokens;
  if (total > config_.max_model_len)
    return {SubmitStatus::TooLong, fmt::format("{} tokens exceed max_model_len {}", total, config_.max_model_len), nullptr};
  if (static_cast<int>(waiting_.size()) >= config_.max_waiting)
    return {SubmitStatus::QueueFull, fmt::format("{} requests waiting", waiting_.size()), nullptr};
  if (request.n < 1 || request.n > config_.max_num_seqs)
    return {SubmitStatus::Invalid, fmt::format("n must be in [1, {}], got {}", config_.max_num_seqs, request.n), nullptr};
  auto channel = std::make_shared<Channel>(request.n);
  const auto& s = request.sampling;
  for (int index = 0; index < request.n; ++index) {
    auto seq = std::make_shared<Sequence>();
    // Sample i of a seeded request uses seed + i, as the real engine does.
    uint64_t seed = s.seed ? (*s.seed + static_cast<uint64_t>(index)) ^ hash_prompt(request.prompt)
                           : (s.temperature == 0.0 ? hash_prompt(request.prompt) : std::random_device{}());
    seq->rng.seed(seed);
    seq->request = request;
    seq->index = index;
    seq->channel = channel;
    waiting_.push_back(seq);
  }
  stats_.waiting = static_cast<int>(waiting_.size());
  wake_.notify_all();
  return {SubmitStatus::Ok, "", channel};
}

EngineStats FakeEngine::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void FakeEngine::loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    if (running_.empty() && waiting_.empty()) {
      wake_.wait_for(lock, std::chrono::milliseconds(50));
      continue;
    }
    step_locked();
    lock.unlock();
    std::this_thread::sleep_for(config_.step);
    lock.lock();
  }
}

void FakeEngine::step_locked() {
  auto finish = [&](Sequence& seq, RequestOutput out, FinishReason reason) {
    out.index = seq.index;
    out.finish = reason;
    seq.channel->deliver(std::move(out));
    stats_.kv_blocks_used -= seq.blocks;
    seq.blocks = 0;
    seq.done = true;
  };
  // Cancelled requests leave at once, their blocks with them.
  auto cancelled = [](const auto& s) { return s->channel->cancelled(s->index); };
  for (auto& seq : running_)
    if (cancelled(seq)) finish(*seq, {}, FinishReason::Abort);
  std::erase_if(running_, cancelled);
  for (auto& seq : waiting_)
    if (cancelled(seq)) finish(*seq, {}, FinishReason::Abort);
  std::erase_if(waiting_, cancelled);

  while (!waiting_.empty() && static_cast<int>(running_.size()) < config_.max_num_seqs) {
    auto seq = waiting_.front();
    int need = (static_cast<int>(seq->request.prompt.size()) + config_.block_size) / config_.block_size;
    if (stats_.kv_blocks_used + need > config_.kv_blocks) break;
    waiting_.pop_front();
    seq->blocks = need;
    stats_.kv_blocks_used += need;
    if (!seq->channel->prompt_counted) {
      seq->channel->prompt_counted = true;
      stats_.prompt_tokens += seq->request.prompt.size();
    }
    running_.push_back(seq);
  }

  for (auto& seq : running_) {
    auto& req = seq->request;
    if (seq->pending_bytes.empty()) {
      bool may_end = !req.stop.ignore_eos && seq->generated >= req.stop.min_tokens;
      if (seq->generated > 0 && may_end && seq->rng() % 12 == 0) {
        seq->pending_bytes = std::string(1, '\0');  // marker: EOS next
      } else {
        seq->pending_bytes = std::string(seq->generated > 0 ? " " : "") + kWords[seq->rng() % kNumWords];
      }
    }
    int32_t token;
    if (seq->pending_bytes == std::string(1, '\0')) {
      token = config_.eos_token;
      seq->pending_bytes.clear();
    } else {
      token = static_cast<unsigned char>(seq->pending_bytes[0]);
      seq->pending_bytes.erase(0, 1);
    }
    ++seq->generated;
    ++stats_.generation_tokens;
    int total = static_cast<int>(req.prompt.size()) + seq->generated;
    int need = (total + config_.block_size - 1) / config_.block_size;
    stats_.kv_blocks_used += need - seq->blocks;
    seq->blocks = need;

    RequestOutput out;
    out.index = seq->index;
    out.new_tokens = {token};
    out.prompt_tokens = static_cast<int>(req.prompt.size());
    if (req.sampling.logprobs) {
      TokenLogprob lp{token, -0.05f - static_cast<float>(seq->rng() % 100) / 100.0f, {}};
      lp.top.emplace_back(token, lp.logprob);
      for (int k = 1; k < req.sampling.top_logprobs; ++k) lp.top.emplace_back('a' + k, lp.logprob - k);
      out.logprobs.push_back(lp);
    }
    if (seq->generated == 3 && prompt_contains(req.prompt, "FAIL")) {
      out.new_tokens.clear();
      out.logprobs.clear();
      out.error = "simulated engine failure";
      finish(*seq, std::move(out), FinishReason::Error);
      continue;
    }
    bool is_stop_id = std::find(req.stop.stop_token_ids.begin(), req.stop.stop_token_ids.end(), token) !=
                      req.stop.stop_token_ids.end();
    bool past_min = seq->generated >= req.stop.min_tokens;
    if ((token == config_.eos_token && !req.stop.ignore_eos && past_min) || (is_stop_id && past_min)) {
      out.finished_by_stop_token = true;
      finish(*seq, std::move(out), FinishReason::Stop);
    } else if (seq->generated >= req.stop.max_tokens) {
      finish(*seq, std::move(out), FinishReason::Length);
    } else {
      seq->channel->deliver(std::move(out));
    }
  }
  std::erase_if(running_, [](const auto& s) { return s->done; });
  stats_.running = static_cast<int>(running_.size());
  stats_.waiting = static_cast<int>(waiting_.size());
}

void FakeEngine::shutdown(std::chrono::milliseconds drain_timeout) {
  std::unique_lock lock(mutex_);
  if (!thread_.joinable()) return;
  accepting_ = false;
  auto deadline = std::chrono::steady_clock::now() + drain_timeout;
  while ((!running_.empty() || !waiting_.empty()) && std::chrono::steady_clock::now() < deadline) {
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    lock.lock();
  }
  for (auto& seq : running_) seq->channel->cancel();
  for (auto& seq : waiting_) seq->channel->cancel();
  step_locked();  // delivers the aborts
  stop_ = true;
  wake_.notify_all();
  lock.unlock();
  thread_.join();
}

}  // namespace nibble::fakes
