#pragma once
// Chat templates: a Jinja2-compatible template engine (sandboxed, bounded)
// rendering a model's chat template exactly as transformers does.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace nibble {

// How message content reaches the template (vLLM's --chat-template-content-format).
enum class ContentFormat {
  Auto,    // OpenAI when the template loops over message content, String otherwise
  String,  // content parts flattened: text parts joined with "\n"
  OpenAI,  // content always a list of parts ({"type": "text", "text": ...}, {"type": "image"}, ...)
  AsIs,    // messages passed exactly as given (no preparation at all)
};

struct ChatRenderInput {
  // OpenAI-shaped messages. ordered_json keeps the client's key order, which
  // `tojson` output depends on (plain nlohmann::json converts implicitly).
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null or array of tool definitions
  bool add_generation_prompt = true;
  // bos_token, eos_token and every other special token from tokenizer_config.json.
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
  // Extra variables passed to the template (e.g. enable_thinking).
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  // Message preparation as vLLM does it (see prepare_chat_messages).
  ContentFormat content_format = ContentFormat::Auto;
  // Time seen by strftime_now() (as UTC); the local time when unset.
  std::optional<std::chrono::system_clock::time_point> now;
};

class ChatTemplate {
 public:
  virtual ~ChatTemplate() = default;
  // Parses the template; throws nibble::Error with line and column on a syntax error.
  static std::unique_ptr<ChatTemplate> parse(const std::string& source);
  // Renders; throws nibble::Error (with line and column) on a template error or
  // raise_exception(), or when a sandbox limit is hit.
  virtual std::string render(const ChatRenderInput& input) const = 0;
  // The format Auto resolves to for this template.
  virtual ContentFormat detected_content_format() const = 0;
};

// Prepares OpenAI request messages for a template, as vLLM does: content as a
// string (text parts joined with "\n"; null content becomes "") or as a list
// of parts (a string becomes one text part); assistant tool_calls whose
// function.arguments is a JSON string get it parsed into an object. Throws
// nibble::Error naming the message at fault on malformed input.
nlohmann::ordered_json prepare_chat_messages(const nlohmann::ordered_json& messages, ContentFormat format);

// A `--chat-template` value: the path of a file to read, or the template
// itself when no such file exists and the text looks like a template.
std::string load_chat_template_override(const std::string& file_or_inline);

// The chat template and special tokens of a model, from its tokenizer_config.json
// (chat_template as a string or a list of named templates) or a chat_template.jinja
// beside it; the ChatML-style fallback (logged) when there is none.
struct ChatTemplateConfig {
  std::string source;
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
  bool is_fallback = false;
};
// `template_name`: which named template to use when the config has several
// ("default" when empty; "tool_use" is the usual alternative).
ChatTemplateConfig load_chat_template_config(const std::string& tokenizer_config_path,
                                             const std::string& template_name = {});

// A generic ChatML template used when a model ships none.
extern const char* const kFallbackChatTemplate;

}  // namespace nibble
