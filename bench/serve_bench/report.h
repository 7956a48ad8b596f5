#pragma once
// The results as a human-readable table and as JSON.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.h"
#include "runner.h"

namespace nibble::serve_bench {

struct RunInfo {
  std::string model;
  std::string prompt_mode;  // how prompts were built (token ids or words)
};

std::string format_table(const std::vector<LevelResult>& levels);
nlohmann::json to_json(const Options& options, const RunInfo& info,
                       const std::vector<LevelResult>& levels);

}  // namespace nibble::serve_bench
