// OpenAI request messages -> what chat templates expect, following vLLM's
// chat_utils (content flattening or part lists, tool-call arguments as objects).
#include "nibble/chat/chat_template.h"
#include "nibble/core/error.h"

namespace nibble {
namespace {

using ojson = nlohmann::ordered_json;

std::string where(size_t index) { return "messages[" + std::to_string(index) + "]"; }

// One content part in the shape templates see ({"type": "text", "text": ...},
// {"type": "image"}, ...), or nullopt-like empty object for unknown parts.
ojson normalize_part(const ojson& part, const std::string& at) {
  if (part.is_string()) return ojson{{"type", "text"}, {"text", part}};
  if (!part.is_object()) throw Error(at + " must be an object or a string");
  auto type_it = part.find("type");
  if (type_it == part.end() || !type_it->is_string()) throw Error(at + ".type must be a string");
  const std::string type = *type_it;
  if (type == "text" || type == "input_text" || type == "refusal") {
    const char* key = type == "refusal" ? "refusal" : "text";
    auto text = part.find(key);
    if (text == part.end() || !text->is_string()) throw Error(at + "." + key + " must be a string");
    return ojson{{"type", "text"}, {"text", *text}};
  }
  if (type == "image_url" || type == "input_image" || type == "image") return ojson{{"type", "image"}};
  if (type == "input_audio" || type == "audio_url") return ojson{{"type", "audio"}};
  if (type == "video_url") return ojson{{"type", "video"}};
  throw Error(at + ".type '" + type + "' is not a supported content part type");
}

ojson parse_tool_calls(const ojson& calls, const std::string& at) {
  if (!calls.is_array()) throw Error(at + ".tool_calls must be an array");
  ojson out = ojson::array();
  for (size_t k = 0; k < calls.size(); ++k) {
    std::string call_at = at + ".tool_calls[" + std::to_string(k) + "]";
    ojson call = calls[k];
    if (!call.is_object()) throw Error(call_at + " must be an object");
    auto fn = call.find("function");
    if (fn != call.end() && fn->is_object()) {
      auto args = fn->find("arguments");
      if (args != fn->end() && args->is_string()) {
        try {
          *args = ojson::parse(args->get<std::string>());
        } catch (const ojson::parse_error&) {
          throw Error(call_at + ".function.arguments is not valid JSON");
        }
      }
    }
    out.push_back(std::move(call));
  }
  return out;
}

}  // namespace

ojson prepare_chat_messages(const ojson& messages, ContentFormat format) {
  if (!messages.is_array()) throw Error("messages must be an array");
  if (format == ContentFormat::AsIs) return messages;
  ojson out = ojson::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    const std::string at = where(i);
    if (!m.is_object()) throw Error(at + " must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) throw Error(at + ".role must be a string");
    ojson msg = ojson::object();
    msg["role"] = *role;
    // Parts as a list, whatever shape the client sent.
    ojson parts = ojson::array();
    auto content = m.find("content");
    if (content != m.end() && !content->is_null()) {
      if (content->is_string()) {
        parts.push_back(ojson{{"type", "text"}, {"text", *content}});
      } else if (content->is_array()) {
        for (size_t k = 0; k < content->size(); ++k)
          parts.push_back(normalize_part((*content)[k], at + ".content[" + std::to_string(k) + "]"));
      } else {
        throw Error(at + ".content must be a string, an array of content parts or null");
      }
    }
    if (format == ContentFormat::OpenAI) {
      msg["content"] = parts;
    } else {
      std::string text;
      bool first = true;
      for (const auto& p : parts) {
        if (p["type"] != "text") continue;
        if (!first) text += "\n";
        first = false;
        text += p["text"].get<std::string>();
      }
      msg["content"] = text;
    }
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (it.key() == "role" || it.key() == "content") continue;
      if (it.key() == "tool_calls") {
        if (it->is_null()) continue;
        msg["tool_calls"] = parse_tool_calls(*it, at);
      } else {
        msg[it.key()] = it.value();
      }
    }
    out.push_back(std::move(msg));
  }
  return out;
}

}  // namespace nibble
