#pragma once
// A Jinja2-compatible template engine, configured as transformers configures
// Jinja2 for chat templates: trim_blocks, lstrip_blocks, loop controls,
// sandboxed (no file or process access, immutable lists and dicts) and bounded.
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace nibble::jinja {

struct Program;

struct RenderLimits {
  size_t max_output_bytes = 8u << 20;
  size_t max_loop_iterations = 1'000'000;  // over the whole render
  int max_call_depth = 64;                 // macro recursion
};

struct RenderOptions {
  RenderLimits limits;
  // strftime_now() uses this time (as UTC) when set, the local time otherwise.
  std::optional<std::chrono::system_clock::time_point> now;
};

class Template {
 public:
  // Throws nibble::Error ("chat template error at line L, column C: ...").
  static Template parse(std::string_view source);

  // Renders with the given top-level variables (a JSON object); the globals
  // raise_exception, strftime_now, namespace, range and dict are always there.
  // Throws nibble::Error with line and column on any template error.
  std::string render(const nlohmann::ordered_json& variables, const RenderOptions& options = {}) const;

  // True when the template loops over a message's content (`for x in
  // message['content']`), i.e. it expects OpenAI-style content part lists.
  bool iterates_over_content() const;

 private:
  std::shared_ptr<const Program> program_;
};

}  // namespace nibble::jinja
