// Robustness: random mutations of real chat templates must parse or fail with
// nibble::Error, and render or fail with nibble::Error; never crash or hang.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "nibble/chat/chat_template.h"
#include "nibble/chat/jinja.h"
#include "nibble/core/error.h"

namespace nibble {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

std::vector<std::string> seed_templates() {
  std::vector<std::string> seeds = {kFallbackChatTemplate};
  fs::path dir = fs::path(NIBBLE_SHARED_DIR) / "testdata" / "chat-templates";
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f);
      std::stringstream ss;
      ss << in.rdbuf();
      seeds.push_back(ss.str());
    }
  }
  return seeds;
}

const std::vector<std::string> kFragments = {
    "{%", "%}", "{{", "}}", "{#", "#}", "{%-", "-%}", "(", ")", "[", "]", "{", "}", "'", "\"", "|", ".", ",", ":",
    " if ", " else ", " endif ", " for ", " in ", " endfor ", " not ", " and ", " is ", " set ", "=", "+", "-", "*",
    "**", "//", "~", "loop.", "messages", "[0]", "[::-1]", "|tojson", "|length", "namespace(", "macro ", "endmacro",
    "raise_exception(", "\\", "\n", "0", "9999999999999999999", "caller()", "range(", "break", "continue"};

std::string mutate(const std::string& s, std::mt19937& rng) {
  std::string out = s;
  int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    if (out.empty()) out = "{{";
    size_t pos = rng() % out.size();
    switch (rng() % 5) {
      case 0:  // delete a span
        out.erase(pos, 1 + rng() % 12);
        break;
      case 1:  // insert a fragment
        out.insert(pos, kFragments[rng() % kFragments.size()]);
        break;
      case 2: {  // duplicate a span elsewhere
        std::string span = out.substr(pos, 1 + rng() % 40);
        out.insert(rng() % out.size(), span);
        break;
      }
      case 3:  // replace one byte, sometimes with a non-ASCII or control byte
        out[pos] = static_cast<char>(rng() % 256);
        break;
      default:  // truncate
        out.resize(pos);
    }
  }
  return out;
}

TEST(ChatFuzz, MutatedTemplatesParseOrErrorAndRenderOrError) {
  ChatRenderInput input;
  input.messages = ojson::parse(R"([
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "abcdefghi", "type": "function",
      "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
    {"role": "tool", "tool_call_id": "abcdefghi", "content": "ok"},
    {"role": "user", "content": [{"type": "text", "text": "part"}]}])");
  input.tools = ojson::parse(R"([{"type": "function", "function": {"name": "f", "description": "d",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer", "description": "x"}}}}}])");
  input.special_tokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  // NIBBLE_CHAT_FUZZ_ITERATIONS raises the mutations per template for longer local runs.
  const char* env = std::getenv("NIBBLE_CHAT_FUZZ_ITERATIONS");
  const int iterations = env ? std::max(1, std::atoi(env)) : 250;
  std::mt19937 rng(env ? static_cast<unsigned>(std::random_device{}()) : 1234u);
  size_t parsed = 0, rendered = 0, total = 0;
  for (const auto& seed : seed_templates()) {
    for (int k = 0; k < iterations; ++k) {
      std::string source = mutate(seed, rng);
      ++total;
      std::unique_ptr<ChatTemplate> tmpl;
      try {
        tmpl = ChatTemplate::parse(source);
      } catch (const Error&) {
        continue;
      }
      ++parsed;
      for (ContentFormat format : {ContentFormat::Auto, ContentFormat::AsIs}) {
        input.content_format = format;
        try {
          tmpl->render(input);
          ++rendered;
        } catch (const Error&) {
        }
      }
    }
  }
  std::cout << "[chat] fuzz: " << total << " mutated templates, " << parsed << " parsed, " << rendered
            << " renders succeeded\n";
  EXPECT_GT(total, 0u);
}

TEST(ChatFuzz, RandomBytesNeverCrashTheLexer) {
  std::mt19937 rng(99);
  const std::string alphabet = "{}%#-+()[]'\"|.,:~ \n\tabcxyz019_=<>!*/\\";
  for (int k = 0; k < 3000; ++k) {
    std::string s;
    size_t n = rng() % 60;
    for (size_t m = 0; m < n; ++m) s += alphabet[rng() % alphabet.size()];
    try {
      jinja::Template::parse(s).render(ojson::object());
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace nibble
