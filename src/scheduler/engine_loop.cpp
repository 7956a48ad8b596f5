#include "nibble/scheduler/engine_loop.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "nibble/core/error.h"
#include "nibble/core/thread_pool.h"
#include "nibble/engine/backend.h"
#include "nibble/scheduler/scheduler.h"
#include "request_channel.h"

namespace nibble {

namespace {

using Clock = std::chrono::steady_clock;

// The configured length, or the model's; never more than the KV pool holds,
// so that a request sized to max_model_len always fits.
int resolve_max_model_len(const SchedulerConfig& config, const Backend& backend) {
  const KvCacheShape kv = backend.kv_cache_shape();
  int model_max = backend.config().max_position_embeddings;
  if (backend.max_context() > 0 && (model_max <= 0 || backend.max_context() < model_max)) {
    spdlog::warn("the {} backend computes at most {} tokens of context for this model (sliding window); "
                 "max_model_len is limited to that", backend.name(), backend.max_context());
    model_max = backend.max_context();
  }
  const long long capacity = static_cast<long long>(kv.num_blocks) * kv.block_size;
  if (config.max_model_len <= 0) {
    NIBBLE_CHECK(model_max > 0, "max_model_len is not set and the model's config.json has no max_position_embeddings");
    if (model_max > capacity) {
      spdlog::info("max_model_len set to {} tokens, what the KV cache holds ({} blocks of {}); the model allows {}",
                   capacity, kv.num_blocks, kv.block_size, model_max);
      return static_cast<int>(capacity);
    }
    return model_max;
  }
  NIBBLE_CHECK(model_max <= 0 || config.max_model_len <= model_max,
               fmt::format("max_model_len {} exceeds the {} tokens the model allows on this backend", config.max_model_len,
                           model_max));
  NIBBLE_CHECK(config.max_model_len <= capacity,
               fmt::format("max_model_len {} does not fit in the KV cache, which holds {} tokens ({} blocks of {}); "
                           "lower max_model_len or give the KV cache more memory",
                           config.max_model_len, capacity, kv.num_blocks, kv.block_size));
  return config.max_model_len;
}

SchedulerConfig with_model_eos(SchedulerConfig config, const ModelConfig& model) {
  if (config.eos_token_ids.empty()) config.eos_token_ids.assign(model.eos_token_ids.begin(), model.eos_token_ids.end());
  return config;
}

// State shared between submitting threads, handles and the engine thread.
struct LoopShared {
  struct Pending {
    uint64_t key;
    GenerationRequest request;
    std::shared_ptr<RequestChannel> channel;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Pending> pending;
  std::vector<uint64_t> cancels;
  std::vector<std::pair<uint64_t, int>> sample_cancels;  // (request key, sample index)
  bool accepting = true;
  bool draining = false;
  Clock::time_point drain_deadline;
  int unadmitted = 0;  // the scheduler's count as of the last drain
  EngineStats stats;

  void cancel(uint64_t key) {
    {
      std::lock_guard lock(mu);
      cancels.push_back(key);
    }
    cv.notify_all();
  }

  void cancel_sample(uint64_t key, int index) {
    {
      std::lock_guard lock(mu);
      sample_cancels.emplace_back(key, index);
    }
    cv.notify_all();
  }
};

class EngineLoopImpl final : public EngineLoop {
 public:
  EngineLoopImpl(Backend& backend, const SchedulerConfig& config, EngineLoopOptions options)
      : backend_(backend),
        options_(std::move(options)),
        config_(with_model_eos(config, backend.config())),
        max_model_len_(resolve_max_model_len(config, backend)),
        scheduler_(config_, backend.kv_cache_shape(), backend.config().vocab_size, max_model_len_,
                   std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32)),
        shared_(std::make_shared<LoopShared>()) {
    NIBBLE_CHECK(options_.sampling_threads >= 0,
                 fmt::format("sampling_threads must be >= 0, got {}", options_.sampling_threads));
    size_t threads = static_cast<size_t>(options_.sampling_threads);
    if (threads == 0) threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
    if (threads > 1) {
      sampling_pool_ = std::make_unique<ThreadPool>(threads);
      scheduler_.set_sampling_pool(sampling_pool_.get());
    }
    shared_->stats = scheduler_.stats();
    thread_ = std::thread([this] { run(); });
  }

  ~EngineLoopImpl() override { shutdown(std::chrono::milliseconds(0)); }

  SubmitResult submit(GenerationRequest request) override {
    ValidationResult valid = validate_request(request, scheduler_.limits());
    if (!valid.ok()) return {valid.status, valid.message, nullptr};
    std::lock_guard lock(shared_->mu);
    if (!shared_->accepting) return {SubmitStatus::ShuttingDown, "the server is shutting down", nullptr};
    const int queued = shared_->unadmitted + static_cast<int>(shared_->pending.size());
    if (queued >= config_.max_waiting) {
      return {SubmitStatus::QueueFull, fmt::format("the server is busy: {} requests are already waiting", queued),
              nullptr};
    }
    const uint64_t key = next_key_++;
    std::weak_ptr<LoopShared> weak = shared_;
    auto channel = std::make_shared<RequestChannel>(request.n, [weak, key](int sample) {
      auto shared = weak.lock();
      if (!shared) return;
      if (sample == RequestChannel::kAllSamples) {
        shared->cancel(key);
      } else {
        shared->cancel_sample(key, sample);
      }
    });
    shared_->pending.push_back({key, std::move(request), channel});
    shared_->cv.notify_all();
    return {SubmitStatus::Ok, {}, channel};
  }

  EngineStats stats() const override {
    std::lock_guard lock(shared_->mu);
    return shared_->stats;
  }

  int max_model_len() const override { return max_model_len_; }
  int max_samples_per_request() const override { return scheduler_.limits().max_num_seqs; }

  void shutdown(std::chrono::milliseconds drain_timeout) override {
    {
      std::lock_guard lock(shared_->mu);
      shared_->accepting = false;
      if (!shared_->draining) {
        shared_->draining = true;
        shared_->drain_deadline = Clock::now() + drain_timeout;
      } else {
        shared_->drain_deadline = std::min(shared_->drain_deadline, Clock::now() + drain_timeout);
      }
    }
    shared_->cv.notify_all();
    std::lock_guard join_lock(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    for (;;) {
      std::vector<Delivery> deliveries;
      bool exit_now = false;
      {
        std::unique_lock lock(shared_->mu);
        shared_->cv.wait(lock, [&] {
          return !shared_->pending.empty() || !shared_->cancels.empty() || !shared_->sample_cancels.empty() ||
                 shared_->draining || scheduler_.has_unfinished();
        });
        take_submissions();
        for (uint64_t key : shared_->cancels) append(deliveries, scheduler_.abort_request(key));
        shared_->cancels.clear();
        for (auto [key, index] : shared_->sample_cancels) append(deliveries, scheduler_.abort_sample(key, index));
        shared_->sample_cancels.clear();
        if (shared_->draining && Clock::now() >= shared_->drain_deadline) {
          append(deliveries, scheduler_.abort_all(FinishReason::Abort, "the server is shutting down"));
        }
        exit_now = shared_->draining && !scheduler_.has_unfinished() && shared_->pending.empty();
        shared_->unadmitted = scheduler_.num_unadmitted();
      }
      route(deliveries);
      if (exit_now) break;
      if (scheduler_.has_unfinished()) {
        try {
          step();
        } catch (const std::exception& e) {
          // A bug outside the backend: fail what is in flight rather than the process.
          spdlog::error("engine loop: {}", e.what());
          std::vector<Delivery> failed = scheduler_.abort_all(FinishReason::Error, fmt::format("engine error: {}", e.what()));
          route(failed);
        }
      }
      std::lock_guard lock(shared_->mu);
      shared_->stats = scheduler_.stats();
      shared_->unadmitted = scheduler_.num_unadmitted();
    }
  }

  // Called with shared_->mu held.
  void take_submissions() {
    for (auto& p : shared_->pending) {
      const int n = p.request.n;
      ValidationResult added = scheduler_.add_request(p.key, std::move(p.request));
      if (added.ok()) {
        channels_.emplace(p.key, p.channel);
        continue;
      }
      for (int index = 0; index < n; ++index) {
        RequestOutput out;
        out.index = index;
        out.finish = FinishReason::Error;
        out.error = added.message;
        p.channel->push(std::move(out));
      }
    }
    shared_->pending.clear();
  }

  void step() {
    SchedulerStep work = scheduler_.schedule();
    {
      // Admission happened just now: let submit() see the freed queue places at once.
      std::lock_guard lock(shared_->mu);
      shared_->unadmitted = scheduler_.num_unadmitted();
    }
    if (work.empty()) {
      // Nothing fits right now (cannot last: a lone request always fits);
      // wait for a cancellation or a submission instead of spinning.
      std::unique_lock lock(shared_->mu);
      shared_->cv.wait_for(lock, std::chrono::milliseconds(1));
      return;
    }
    std::vector<Delivery> deliveries;
    try {
      if (options_.forward_greedy && work.greedy_only && !work.batch.logits_indices.empty()) {
        std::vector<int32_t> tokens = options_.forward_greedy(work.batch);
        deliveries = scheduler_.update_with_tokens(work, tokens);
      } else {
        backend_.forward(work.batch, logits_);
        deliveries = scheduler_.update(work, logits_);
      }
    } catch (const std::exception& e) {
      spdlog::error("engine step over {} sequences failed: {}", work.sequences.size(), e.what());
      deliveries = scheduler_.fail_step(work, fmt::format("engine error: {}", e.what()));
    }
    route(deliveries);
  }

  static void append(std::vector<Delivery>& into, std::vector<Delivery>&& more) {
    into.insert(into.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }

  void route(std::vector<Delivery>& deliveries) {
    for (auto& d : deliveries) {
      auto it = channels_.find(d.request_key);
      if (it == channels_.end()) continue;
      it->second->push(std::move(d.output));
      if (it->second->finished()) channels_.erase(it);
    }
  }

  Backend& backend_;
  EngineLoopOptions options_;
  SchedulerConfig config_;
  int max_model_len_;
  Scheduler scheduler_;  // engine thread only (submit reads its immutable limits)
  std::unique_ptr<ThreadPool> sampling_pool_;  // declared after scheduler_: destroyed before it
  std::shared_ptr<LoopShared> shared_;
  std::unordered_map<uint64_t, std::shared_ptr<RequestChannel>> channels_;  // engine thread only
  std::vector<float> logits_;
  uint64_t next_key_ = 1;  // guarded by shared_->mu
  std::mutex join_mu_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<EngineLoop> EngineLoop::start(Backend& backend, const SchedulerConfig& config) {
  return start(backend, config, EngineLoopOptions{});
}

std::unique_ptr<EngineLoop> EngineLoop::start(Backend& backend, const SchedulerConfig& config,
                                              EngineLoopOptions options) {
  if (!options.forward_greedy && backend.has_device_greedy())
    options.forward_greedy = [&backend](const Batch& batch) { return backend.forward_greedy(batch); };
  return std::make_unique<EngineLoopImpl>(backend, config, std::move(options));
}

}  // namespace nibble
