#include "nibble/server/metrics.h"

#include <mutex>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace nibble::server {

namespace {

prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
}

// Engine counters are cumulative; prometheus counters only go up by deltas.
void advance(prometheus::Counter& counter, uint64_t total) {
  double now = static_cast<double>(total);
  if (now > counter.Value()) counter.Increment(now - counter.Value());
}

}  // namespace

struct Metrics::Impl {
  std::mutex mutex;
  prometheus::Registry registry;
  prometheus::Gauge& running = prometheus::BuildGauge()
                                   .Name("nibble_num_requests_running")
                                   .Help("Requests in the running batch")
                                   .Register(registry)
                                   .Add({});
  prometheus::Gauge& waiting = prometheus::BuildGauge()
                                   .Name("nibble_num_requests_waiting")
                                   .Help("Requests waiting to be scheduled")
                                   .Register(registry)
                                   .Add({});
  prometheus::Gauge& kv_usage = prometheus::BuildGauge()
                                    .Name("nibble_kv_cache_usage_perc")
                                    .Help("Fraction of KV cache blocks in use by live requests (0-1)")
                                    .Register(registry)
                                    .Add({});
  prometheus::Gauge& kv_used = prometheus::BuildGauge()
                                   .Name("nibble_kv_cache_blocks_used")
                                   .Help("KV cache blocks referenced by live requests")
                                   .Register(registry)
                                   .Add({});
  prometheus::Gauge& kv_total = prometheus::BuildGauge()
                                    .Name("nibble_kv_cache_blocks_total")
                                    .Help("KV cache blocks in the pool")
                                    .Register(registry)
                                    .Add({});
  prometheus::Counter& prompt_tokens = prometheus::BuildCounter()
                                           .Name("nibble_prompt_tokens_total")
                                           .Help("Prompt tokens processed")
                                           .Register(registry)
                                           .Add({});
  prometheus::Counter& generation_tokens = prometheus::BuildCounter()
                                               .Name("nibble_generation_tokens_total")
                                               .Help("Tokens generated")
                                               .Register(registry)
                                               .Add({});
  prometheus::Counter& prefix_queries = prometheus::BuildCounter()
                                            .Name("nibble_prefix_cache_queries_total")
                                            .Help("Prompt tokens looked up in the prefix cache")
                                            .Register(registry)
                                            .Add({});
  prometheus::Counter& prefix_hits = prometheus::BuildCounter()
                                         .Name("nibble_prefix_cache_hits_total")
                                         .Help("Prompt tokens served from the prefix cache")
                                         .Register(registry)
                                         .Add({});
  prometheus::Gauge& prefix_hit_rate = prometheus::BuildGauge()
                                           .Name("nibble_prefix_cache_hit_rate")
                                           .Help("Prefix cache hits / queries since start (0-1)")
                                           .Register(registry)
                                           .Add({});
  prometheus::Counter& preemptions = prometheus::BuildCounter()
                                         .Name("nibble_num_preemptions_total")
                                         .Help("Requests preempted for lack of KV blocks")
                                         .Register(registry)
                                         .Add({});
  prometheus::Histogram& ttft = prometheus::BuildHistogram()
                                    .Name("nibble_time_to_first_token_seconds")
                                    .Help("Time from request arrival to its first generated token")
                                    .Register(registry)
                                    .Add({}, latency_buckets());
  prometheus::Histogram& itl = prometheus::BuildHistogram()
                                   .Name("nibble_inter_token_latency_seconds")
                                   .Help("Time between consecutive generated tokens of a request")
                                   .Register(registry)
                                   .Add({}, latency_buckets());
  prometheus::Histogram& e2e = prometheus::BuildHistogram()
                                   .Name("nibble_e2e_request_latency_seconds")
                                   .Help("Time from request arrival to its last token")
                                   .Register(registry)
                                   .Add({}, latency_buckets());
  prometheus::Family<prometheus::Counter>& finished = prometheus::BuildCounter()
                                                          .Name("nibble_request_success_total")
                                                          .Help("Finished generations by finish reason")
                                                          .Register(registry);
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::observe_time_to_first_token(double seconds) { impl_->ttft.Observe(seconds); }
void Metrics::observe_inter_token_latency(double seconds) { impl_->itl.Observe(seconds); }
void Metrics::observe_e2e_latency(double seconds) { impl_->e2e.Observe(seconds); }

void Metrics::count_finished(const std::string& finish_reason) {
  std::lock_guard lock(impl_->mutex);
  impl_->finished.Add({{"finished_reason", finish_reason}}).Increment();
}

std::string Metrics::render(const EngineStats* stats) {
  std::lock_guard lock(impl_->mutex);
  if (stats) {
    impl_->running.Set(stats->running);
    impl_->waiting.Set(stats->waiting);
    impl_->kv_used.Set(stats->kv_blocks_used);
    impl_->kv_total.Set(stats->kv_blocks_total);
    impl_->kv_usage.Set(stats->kv_blocks_total > 0 ? double(stats->kv_blocks_used) / stats->kv_blocks_total : 0.0);
    advance(impl_->prompt_tokens, stats->prompt_tokens);
    advance(impl_->generation_tokens, stats->generation_tokens);
    advance(impl_->prefix_queries, stats->prefix_cache_queries);
    advance(impl_->prefix_hits, stats->prefix_cache_hits);
    advance(impl_->preemptions, stats->preemptions);
    impl_->prefix_hit_rate.Set(stats->prefix_cache_queries > 0
                                   ? double(stats->prefix_cache_hits) / double(stats->prefix_cache_queries)
                                   : 0.0);
  }
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace nibble::server
