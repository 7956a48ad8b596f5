// Replays the cases render_reference.py rendered with Jinja2 and checks that
// nibble's engine gives byte-identical output, or raises where Jinja2 raised.
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <gtest/gtest.h>

#include "nibble/chat/chat_template.h"
#include "nibble/chat/jinja.h"
#include "nibble/core/error.h"

namespace nibble {
namespace {

using ojson = nlohmann::ordered_json;

std::string first_difference(const std::string& want, const std::string& got) {
  size_t k = 0;
  while (k < want.size() && k < got.size() && want[k] == got[k]) ++k;
  size_t from = k > 40 ? k - 40 : 0;
  return "first difference at byte " + std::to_string(k) + "\n  jinja2: " +
         ojson(want.substr(from, 120)).dump() + "\n  nibble: " + ojson(got.substr(from, 120)).dump();
}

TEST(ChatReference, MatchesJinja2ByteForByte) {
  std::ifstream in(CHAT_REFERENCE_JSON);
  if (!in) GTEST_SKIP() << "no " << CHAT_REFERENCE_JSON << " (the chat_reference_render fixture did not run)";
  ojson ref = ojson::parse(in);
  if (ref.contains("skipped")) GTEST_SKIP() << ref["skipped"].get<std::string>();

  std::map<std::string, std::unique_ptr<ChatTemplate>> parsed;
  std::map<std::string, std::string> parse_errors;
  for (auto it = ref["templates"].begin(); it != ref["templates"].end(); ++it) {
    try {
      parsed[it.key()] = ChatTemplate::parse(it.value().get<std::string>());
    } catch (const Error& e) {
      parse_errors[it.key()] = e.what();
    }
  }
  auto now = std::chrono::system_clock::from_time_t(ref["now_epoch"].get<std::time_t>());
  size_t compared = 0, raised = 0, failures = 0;
  for (const auto& c : ref["cases"]) {
    const std::string name = c["template"].get<std::string>();
    if (c["conversation"].is_null()) {
      EXPECT_TRUE(parse_errors.count(name)) << name << ": Jinja2 refuses to parse it but nibble accepts it";
      continue;
    }
    const std::string label = name + " / " + c["conversation"].get<std::string>() +
                              (c["variables"]["add_generation_prompt"].get<bool>() ? " (+gen)" : "");
    if (!parsed.count(name)) {
      ADD_FAILURE() << label << ": nibble cannot parse: " << parse_errors[name];
      ++failures;
      continue;
    }
    ChatRenderInput input;
    input.content_format = ContentFormat::AsIs;
    input.now = now;
    const ojson& vars = c["variables"];
    for (auto it = vars.begin(); it != vars.end(); ++it) {
      const std::string& key = it.key();
      if (key == "messages") input.messages = it.value();
      else if (key == "tools") input.tools = it.value();
      else if (key == "add_generation_prompt") input.add_generation_prompt = it.value().get<bool>();
      else if (key == "documents") continue;
      else if (key.size() > 6 && key.compare(key.size() - 6, 6, "_token") == 0) input.special_tokens[key] = it.value();
      else input.extra[key] = it.value();
    }
    std::string got;
    std::string error;
    try {
      got = parsed[name]->render(input);
    } catch (const Error& e) {
      error = e.what();
    }
    ++compared;
    if (c.contains("error")) {
      ++raised;
      if (error.empty()) {
        ++failures;
        ADD_FAILURE() << label << ": Jinja2 raised (" << c["error"].get<std::string>() << ") but nibble rendered:\n" << got;
      }
      continue;
    }
    const std::string want = c["output"].get<std::string>();
    if (!error.empty()) {
      ++failures;
      ADD_FAILURE() << label << ": nibble raised: " << error;
    } else if (got != want) {
      ++failures;
      ADD_FAILURE() << label << ": output differs, " << first_difference(want, got);
    }
  }
  std::cout << "[chat] compared " << compared << " renders of " << ref["templates"].size() << " templates against Jinja2 "
            << ref["jinja2_version"].get<std::string>() << " (" << raised << " where both must raise), " << failures
            << " failures\n";
  EXPECT_GT(compared, 0u);
}

// Feature snippets (snippets.jinja) rendered by Jinja2, replayed with the engine.
TEST(ChatReference, FeatureSnippetsMatchJinja2) {
  std::ifstream in(CHAT_REFERENCE_JSON);
  if (!in) GTEST_SKIP() << "no " << CHAT_REFERENCE_JSON << " (the chat_reference_render fixture did not run)";
  ojson ref = ojson::parse(in);
  if (ref.contains("skipped")) GTEST_SKIP() << ref["skipped"].get<std::string>();
  jinja::RenderOptions options;
  options.now = std::chrono::system_clock::from_time_t(ref["now_epoch"].get<std::time_t>());
  size_t count = 0;
  for (const auto& s : ref["snippets"]) {
    const std::string source = s["source"].get<std::string>();
    std::string got, error;
    try {
      got = jinja::Template::parse(source).render(ref["snippet_variables"], options);
    } catch (const Error& e) {
      error = e.what();
    }
    ++count;
    if (s.contains("error")) {
      EXPECT_FALSE(error.empty()) << "Jinja2 raised (" << s["error"].get<std::string>() << ") but nibble rendered\n"
                                  << got << "\nfor snippet:\n" << source;
    } else if (!error.empty()) {
      ADD_FAILURE() << "nibble raised: " << error << "\nfor snippet:\n" << source;
    } else if (got != s["output"].get<std::string>()) {
      ADD_FAILURE() << "snippet output differs, " << first_difference(s["output"].get<std::string>(), got)
                    << "\nfor snippet:\n" << source;
    }
  }
  std::cout << "[chat] compared " << count << " feature snippets against Jinja2\n";
  EXPECT_GT(count, 20u);
}

}  // namespace
}  // namespace nibble
