#pragma once
// Prometheus metrics of the server, rendered in the text format for GET /metrics.
#include <memory>
#include <string>

#include "nibble/scheduler/engine_loop.h"

namespace nibble::server {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  void observe_time_to_first_token(double seconds);
  void observe_inter_token_latency(double seconds);
  void observe_e2e_latency(double seconds);
  void count_finished(const std::string& finish_reason);
  // Updates the engine-side gauges and counters from stats and renders everything.
  std::string render(const EngineStats* stats);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nibble::server
