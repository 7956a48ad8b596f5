// Finding a model's chat template and special tokens, and --chat-template overrides.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "nibble/chat/chat_template.h"
#include "nibble/core/error.h"

namespace nibble {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// transformers stores special tokens as strings or AddedToken dicts.
std::optional<std::string> token_text(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) {
    auto c = v.find("content");
    if (c != v.end() && c->is_string()) return c->get<std::string>();
  }
  return std::nullopt;
}

std::string pick_named_template(const ojson& list, const std::string& wanted, const std::string& path) {
  std::string names;
  for (const auto& entry : list) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") || !entry["name"].is_string() ||
        !entry["template"].is_string())
      throw Error(path + ": chat_template list entries need string 'name' and 'template'");
    if (entry["name"] == wanted) return entry["template"].get<std::string>();
    names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
  }
  throw Error(path + ": no chat template named '" + wanted + "' (available: " + names + ")");
}

}  // namespace

const char* const kFallbackChatTemplate =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- elif message['content'] is iterable %}"
    "{%- for part in message['content'] if part['type'] == 'text' %}{{- part['text'] }}{%- endfor %}"
    "{%- endif %}"
    "{%- if message['tool_calls'] is defined and message['tool_calls'] %}"
    "{%- for call in message['tool_calls'] %}"
    "{%- if message['content'] or not loop.first %}{{- '\\n' }}{%- endif %}"
    "{{- '<tool_call>\\n' + {'name': call['function']['name'], 'arguments': call['function']['arguments']} | tojson"
    " + '\\n</tool_call>' }}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

std::string load_chat_template_override(const std::string& file_or_inline) {
  std::error_code ec;
  if (fs::is_regular_file(file_or_inline, ec)) return read_file(file_or_inline);
  // vLLM's rule: text with template syntax or a newline is an inline template.
  if (file_or_inline.find_first_of("{}\n") != std::string::npos) return file_or_inline;
  throw Error("--chat-template: '" + file_or_inline + "' is neither a readable file nor a template");
}

ChatTemplateConfig load_chat_template_config(const std::string& tokenizer_config_path, const std::string& template_name) {
  ChatTemplateConfig config;
  ojson cfg;
  try {
    cfg = ojson::parse(read_file(tokenizer_config_path));
  } catch (const ojson::parse_error& e) {
    throw Error(tokenizer_config_path + ": invalid JSON: " + e.what());
  }
  if (!cfg.is_object()) throw Error(tokenizer_config_path + ": expected a JSON object");
  for (auto it = cfg.begin(); it != cfg.end(); ++it) {
    const std::string& key = it.key();
    if (key.size() > 6 && key.compare(key.size() - 6, 6, "_token") == 0)
      if (auto text = token_text(it.value())) config.special_tokens[key] = *text;
  }
  if (auto extra = cfg.find("additional_special_tokens"); extra != cfg.end() && extra->is_array()) {
    ojson list = ojson::array();
    for (const auto& t : *extra)
      if (auto text = token_text(t)) list.push_back(*text);
    config.special_tokens["additional_special_tokens"] = list;
  }
  fs::path jinja_file = fs::path(tokenizer_config_path).parent_path() / "chat_template.jinja";
  std::error_code ec;
  auto tmpl = cfg.find("chat_template");
  const std::string wanted = template_name.empty() ? "default" : template_name;
  if (fs::is_regular_file(jinja_file, ec) && template_name.empty()) {
    config.source = read_file(jinja_file);
  } else if (tmpl != cfg.end() && tmpl->is_string()) {
    config.source = tmpl->get<std::string>();
  } else if (tmpl != cfg.end() && tmpl->is_array()) {
    config.source = pick_named_template(*tmpl, wanted, tokenizer_config_path);
  } else if (tmpl != cfg.end() && !tmpl->is_null()) {
    throw Error(tokenizer_config_path + ": chat_template must be a string or a list of named templates");
  } else {
    spdlog::warn("{} has no chat_template; using a generic ChatML template", tokenizer_config_path);
    config.source = kFallbackChatTemplate;
    config.is_fallback = true;
  }
  return config;
}

}  // namespace nibble
