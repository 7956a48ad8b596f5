#pragma once
// Chat templates: a Jinja2-compatible template engine (sandboxed, bounded)
// rendering a model's chat template exactly as transformers does.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace nibble {

struct ChatRenderInput {
  nlohmann::json messages = nlohmann::json::array();  // OpenAI-shaped messages
  nlohmann::json tools;                               // null or array of tool definitions
  bool add_generation_prompt = true;
  // bos_token, eos_token and every other special token from tokenizer_config.json.
  nlohmann::json special_tokens = nlohmann::json::object();
  // Extra variables passed to the template (e.g. enable_thinking).
  nlohmann::json extra = nlohmann::json::object();
};

class ChatTemplate {
 public:
  virtual ~ChatTemplate() = default;
  // Parses the template; throws nibble::Error with line and column on a syntax error.
  static std::unique_ptr<ChatTemplate> parse(const std::string& source);
  // Renders; throws nibble::Error (with line and column) on a template error or
  // raise_exception(), or when a sandbox limit is hit.
  virtual std::string render(const ChatRenderInput& input) const = 0;
};

}  // namespace nibble
