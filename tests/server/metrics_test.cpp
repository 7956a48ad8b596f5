#include <gtest/gtest.h>

#include "nibble/server/metrics.h"

using nibble::EngineStats;
using nibble::server::Metrics;

TEST(Metrics, RendersEngineStatsAndHistograms) {
  Metrics m;
  m.observe_time_to_first_token(0.02);
  m.observe_inter_token_latency(0.003);
  m.observe_e2e_latency(1.5);
  m.count_finished("stop");
  EngineStats s;
  s.running = 3;
  s.waiting = 2;
  s.kv_blocks_total = 100;
  s.kv_blocks_used = 25;
  s.prompt_tokens = 40;
  s.generation_tokens = 7;
  s.prefix_cache_queries = 10;
  s.prefix_cache_hits = 4;
  std::string text = m.render(&s);
  EXPECT_NE(text.find("nibble_num_requests_running 3"), std::string::npos) << text;
  EXPECT_NE(text.find("nibble_num_requests_waiting 2"), std::string::npos);
  EXPECT_NE(text.find("nibble_kv_cache_usage_perc 0.25"), std::string::npos);
  EXPECT_NE(text.find("nibble_kv_cache_blocks_used 25"), std::string::npos);
  EXPECT_NE(text.find("nibble_prompt_tokens_total 40"), std::string::npos);
  EXPECT_NE(text.find("nibble_generation_tokens_total 7"), std::string::npos);
  EXPECT_NE(text.find("nibble_prefix_cache_hit_rate 0.4"), std::string::npos);
  EXPECT_NE(text.find("nibble_time_to_first_token_seconds_count 1"), std::string::npos);
  EXPECT_NE(text.find("nibble_inter_token_latency_seconds_count 1"), std::string::npos);
  EXPECT_NE(text.find("nibble_e2e_request_latency_seconds_count 1"), std::string::npos);
  EXPECT_NE(text.find("nibble_request_success_total{finished_reason=\"stop\"} 1"), std::string::npos);
  // Counters follow the engine's cumulative totals.
  s.prompt_tokens = 50;
  text = m.render(&s);
  EXPECT_NE(text.find("nibble_prompt_tokens_total 50"), std::string::npos);
}
