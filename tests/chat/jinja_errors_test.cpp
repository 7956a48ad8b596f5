// Template errors carry line and column; sandbox limits end runaway templates
// with a clear error instead of exhausting memory, time or the stack.
#include <gtest/gtest.h>

#include "nibble/chat/jinja.h"
#include "nibble/core/error.h"

namespace nibble::jinja {
namespace {

using ojson = nlohmann::ordered_json;

std::string error_of(const std::string& source, const RenderOptions& options = {}) {
  try {
    Template::parse(source).render(ojson::object(), options);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(JinjaErrors, SyntaxErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}"),
            "chat template error at line 3, column 10: unexpected '}}'");
  EXPECT_NE(error_of("{% if true %}never closed").find("line 1, column 26: unexpected end of template, expected 'elif'"),
            std::string::npos)
      << error_of("{% if true %}never closed");
  EXPECT_NE(error_of("ok\n  {% frobnicate %}").find("line 2, column 6: unknown tag 'frobnicate'"), std::string::npos);
  EXPECT_NE(error_of("{{ 'unterminated }}").find("line 1, column 4: unexpected end of string"), std::string::npos);
  EXPECT_NE(error_of("{# never closed").find("missing end of comment tag"), std::string::npos);
  EXPECT_NE(error_of("{% break %}").find("'break' outside of a loop"), std::string::npos);
}

TEST(JinjaErrors, RuntimeErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("a\nb {{ 'x' + 1 }}"), "chat template error at line 2, column 10: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ missing.attr }}"), "chat template error at line 1, column 11: 'missing' is undefined");
  EXPECT_EQ(error_of("\n\n   {{ raise_exception('Roles must alternate') }}"),
            "chat template error at line 3, column 22: Roles must alternate");
  EXPECT_NE(error_of("{{ 1 | nosuchfilter }}").find("No filter named 'nosuchfilter'"), std::string::npos);
  EXPECT_NE(error_of("{{ 1 is nosuchtest }}").find("No test named 'nosuchtest'"), std::string::npos);
  EXPECT_NE(error_of("{% for x in none %}{% endfor %}").find("'NoneType' object is not iterable"), std::string::npos);
}

TEST(JinjaErrors, LoopIterationLimit) {
  RenderOptions options;
  options.limits.max_loop_iterations = 10000;
  EXPECT_NE(error_of("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", options)
                .find("sandbox limit: more than 10000 loop iterations"),
            std::string::npos);
  EXPECT_NE(error_of("{{ range(100000000000) | length }}", options).find("sandbox limit"), std::string::npos);
}

TEST(JinjaErrors, RecursionLimit) {
  EXPECT_NE(error_of("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}").find("sandbox limit: call depth"),
            std::string::npos);
}

TEST(JinjaErrors, OutputSizeLimit) {
  RenderOptions options;
  options.limits.max_output_bytes = 1000;
  EXPECT_NE(error_of("{% for i in range(100) %}0123456789ABCDEF{% endfor %}", options).find("sandbox limit: output larger"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000000000 }}", options).find("sandbox limit"), std::string::npos);
  EXPECT_NE(error_of("{% set s = 'ab' %}{% for i in range(20) %}{% set s = s ~ s %}{% endfor %}{{ s }}", options)
                .find("sandbox limit"),
            std::string::npos);
}

TEST(JinjaErrors, DeepNestingIsRefusedNotCrashing) {
  std::string deep = "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}";
  EXPECT_NE(error_of(deep).find("nesting too deep"), std::string::npos);
  std::string ifs;
  for (int k = 0; k < 5000; ++k) ifs += "{% if true %}";
  EXPECT_NE(error_of(ifs).find("nesting too deep"), std::string::npos);
  std::string nots = "{{ " + [] {
    std::string s;
    for (int k = 0; k < 100000; ++k) s += "not ";
    return s;
  }() + "1 }}";
  EXPECT_NE(error_of(nots).find("nesting too deep"), std::string::npos);
  std::string negs = "{{ " + std::string(100000, '-') + "1 }}";
  EXPECT_NE(error_of(negs).find("nesting too deep"), std::string::npos);
}

TEST(JinjaErrors, IntegerOverflowIsAnError) {
  EXPECT_NE(error_of("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ 2 ** 64 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ 1 // 0 }}").find("division or modulo by zero"), std::string::npos);
}

}  // namespace
}  // namespace nibble::jinja

namespace nibble::jinja {
namespace {

TEST(JinjaErrors, DeeplyNestedValuesAreRefused) {
  EXPECT_NE(error_of("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}")
                .find("value nested deeper"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns }}").find("namespace inside itself"),
            std::string::npos);
  ojson deep = ojson::array();
  for (int k = 0; k < 800; ++k) {
    ojson outer = ojson::array();
    outer.push_back(std::move(deep));
    deep = std::move(outer);
  }
  try {
    Template::parse("{{ x | length }}").render({{"x", deep}});
    FAIL() << "deep input accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nested deeper"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace nibble::jinja
