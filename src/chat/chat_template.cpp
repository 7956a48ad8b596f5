#include "nibble/chat/chat_template.h"

#include "nibble/chat/jinja.h"
#include "nibble/core/error.h"

namespace nibble {
namespace {

class JinjaChatTemplate : public ChatTemplate {
 public:
  explicit JinjaChatTemplate(const std::string& source) : template_(jinja::Template::parse(source)) {
    detected_ = template_.iterates_over_content() ? ContentFormat::OpenAI : ContentFormat::String;
  }

  std::string render(const ChatRenderInput& input) const override {
    if (!input.messages.is_array()) throw Error("chat messages must be an array");
    if (!input.special_tokens.is_object()) throw Error("chat special_tokens must be an object");
    if (!input.extra.is_object()) throw Error("chat template extra variables must be an object");
    ContentFormat format = input.content_format == ContentFormat::Auto ? detected_ : input.content_format;
    // transformers: {**special_tokens_map, **kwargs}, with messages, tools,
    // documents and add_generation_prompt passed explicitly.
    nlohmann::ordered_json vars = nlohmann::ordered_json::object();
    for (auto it = input.special_tokens.begin(); it != input.special_tokens.end(); ++it) vars[it.key()] = it.value();
    vars["documents"] = nullptr;
    for (auto it = input.extra.begin(); it != input.extra.end(); ++it) vars[it.key()] = it.value();
    vars["messages"] = format == ContentFormat::AsIs ? input.messages : prepare_chat_messages(input.messages, format);
    vars["tools"] = input.tools;
    vars["add_generation_prompt"] = input.add_generation_prompt;
    jinja::RenderOptions options;
    options.now = input.now;
    return template_.render(vars, options);
  }

  ContentFormat detected_content_format() const override { return detected_; }

 private:
  jinja::Template template_;
  ContentFormat detected_;
};

}  // namespace

std::unique_ptr<ChatTemplate> ChatTemplate::parse(const std::string& source) {
  return std::make_unique<JinjaChatTemplate>(source);
}

}  // namespace nibble
