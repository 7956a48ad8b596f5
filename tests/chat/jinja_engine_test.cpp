// Focused tests of the Jinja engine's semantics (no Python needed; the
// byte-for-byte comparison with Jinja2 itself is chat_reference_test).
#include <gtest/gtest.h>

#include "nibble/chat/jinja.h"
#include "nibble/core/error.h"

namespace nibble::jinja {
namespace {

using ojson = nlohmann::ordered_json;

std::string render(const std::string& source, const ojson& vars = ojson::object()) {
  return Template::parse(source).render(vars);
}

TEST(JinjaEngine, PrintsValuesAsPython) {
  EXPECT_EQ(render("{{ 1 }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1.5e-5 }} {{ true }} {{ none }}"),
            "1 1.0 0.30000000000000004 1e+16 1.5e-05 True None");
  EXPECT_EQ(render("{{ [1, 'a', none, {'k': \"it's\"}] }}"), "[1, 'a', None, {'k': \"it's\"}]");
  EXPECT_EQ(render("{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}"), "3.5 3 -4 2 1024");
}

TEST(JinjaEngine, UndefinedBehavesAsJinjaDefaultUndefined) {
  EXPECT_EQ(render("[{{ missing }}]"), "[]");
  EXPECT_EQ(render("{{ missing is defined }} {{ not missing }} {{ missing | length }} {{ missing == none }}"),
            "False True 0 False");
  EXPECT_EQ(render("{% for x in missing %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{{ d.nope is defined }}{{ d['nope'] | default('dflt') }}", {{"d", ojson::object()}}), "Falsedflt");
  EXPECT_THROW(render("{{ missing.attr }}"), Error);
  EXPECT_THROW(render("{{ missing + 1 }}"), Error);
  EXPECT_THROW(render("{{ missing | tojson }}"), Error);
}

TEST(JinjaEngine, DictAccessByAttributeAndItem) {
  ojson vars = {{"m", {{"role", "user"}, {"content", "hi"}, {"items", "shadowed"}}}};
  EXPECT_EQ(render("{{ m.role }} {{ m['content'] }} {{ m.get('x', 'y') }} {{ m['items'] }}", vars), "user hi y shadowed");
  // As in Python, `.items` is the dict method even when a key has that name.
  EXPECT_EQ(render("{{ m.items() | length }}", vars), "3");
}

TEST(JinjaEngine, KeyOrderIsPreserved) {
  ojson vars = ojson::parse(R"({"t": {"zeta": 1, "alpha": {"b": 2, "a": 3}}})");
  EXPECT_EQ(render("{{ t | tojson }}", vars), R"({"zeta": 1, "alpha": {"b": 2, "a": 3}})");
  EXPECT_EQ(render("{{ t | tojson(sort_keys=true) }}", vars), R"({"alpha": {"a": 3, "b": 2}, "zeta": 1})");
  EXPECT_EQ(render("{{ t | tojson(indent=2) }}", vars), "{\n  \"zeta\": 1,\n  \"alpha\": {\n    \"b\": 2,\n    \"a\": 3\n  }\n}");
}

TEST(JinjaEngine, TojsonMatchesPythonJsonDumps) {
  EXPECT_EQ(render("{{ 'é\"\\\\\\n\\u0001' | tojson }}"), "\"é\\\"\\\\\\n\\u0001\"");
  EXPECT_EQ(render("{{ 'é😀' | tojson(ensure_ascii=true) }}"), "\"\\u00e9\\ud83d\\ude00\"");
  EXPECT_EQ(render("{{ [1.0, 1e20, 0.000012, none, false] | tojson }}"), "[1.0, 1e+20, 1.2e-05, null, false]");
  EXPECT_EQ(render("{{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}"), "{\"a\":[1,2]}");
}

TEST(JinjaEngine, WhitespaceControlAsTransformersConfiguresIt) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks drops the
  // indentation before one; `-` strips all whitespace on that side.
  EXPECT_EQ(render("{% if true %}\n  a\n  {% endif %}\nb"), "  a\nb");
  EXPECT_EQ(render("x  {%- if true -%}  y  {%- endif -%}  z"), "xyz");
  EXPECT_EQ(render("  {{ 1 }}\n"), "  1");  // one trailing newline is dropped
  EXPECT_EQ(render("  {%+ if true %}k{% endif %}"), "  k");
  EXPECT_EQ(render("a {# c #} b"), "a  b");
  EXPECT_EQ(render("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
}

TEST(JinjaEngine, LoopsAndLoopVariables) {
  EXPECT_EQ(render("{% for x in 'abc' %}{{ loop.index }}{{ x }}{{ loop.revindex0 }}{% if loop.last %}!{% endif %}{% endfor %}"),
            "1a22b13c0!");
  EXPECT_EQ(render("{% for x in [1,2,3] %}{{ loop.previtem | default('-') }}{{ loop.nextitem | default('-') }} {% endfor %}"),
            "-2 13 2- ");
  EXPECT_EQ(render("{% for x in range(10) if x is odd %}{{ x }}/{{ loop.length }} {% endfor %}"),
            "1/5 3/5 5/5 7/5 9/5 ");
  EXPECT_EQ(render("{% for x in range(9) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "023");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2} | items %}{{ k }}{{ v }}{% endfor %}"), "a1b2");
}

TEST(JinjaEngine, ScopingNamespacesAndMacros) {
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"), "4");
  EXPECT_EQ(render("{% macro m(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }} {{ m(b=2, a=3) }}"), "1B 32");
  EXPECT_EQ(render("{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}in{% endcall %}"), "[in]");
  EXPECT_EQ(render("{% set b %}x{{ 1 }}{% endset %}{{ b }}"), "x1");
}

TEST(JinjaEngine, StringMethodsUsePythonSemantics) {
  EXPECT_EQ(render("{{ '  a b  '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'xxhixx'.strip('x') }}"),
            "['a', 'b'] ['a', 'b,c'] hi");
  EXPECT_EQ(render("{{ 'héllo'[1] }}{{ 'héllo' | length }}{{ 'héllo'[::-1] }}"), "é5olléh");
  EXPECT_EQ(render("{{ 'abc'.endswith(('x', 'c')) }} {{ '{}-{}'.format(1, 'a') }} {{ 'ÉCOLE'.lower() }}"),
            "True 1-a école");
}

TEST(JinjaEngine, SandboxRefusesMutation) {
  EXPECT_THROW(render("{% set l = [] %}{{ l.append(1) }}"), Error);
  EXPECT_THROW(render("{% set d = {} %}{{ d.update({'a': 1}) }}"), Error);
  EXPECT_EQ(render("{{ ''.__class__ }}"), "");
}

TEST(JinjaEngine, GenerationTagRendersItsBody) {
  EXPECT_EQ(render("{% generation %}answer {{ 1 }}{% endgeneration %}"), "answer 1");
}

TEST(JinjaEngine, StrftimeNowUsesThePinnedTime) {
  RenderOptions options;
  options.now = std::chrono::system_clock::from_time_t(1768473000);  // 2026-01-15 10:30:00 UTC
  EXPECT_EQ(Template::parse("{{ strftime_now('%Y-%m-%d %H:%M') }}").render(ojson::object(), options), "2026-01-15 10:30");
}

TEST(JinjaEngine, DetectsTemplatesThatIterateOverContent) {
  EXPECT_TRUE(Template::parse("{% for m in messages %}{% for p in m['content'] %}{{ p.text }}{% endfor %}{% endfor %}")
                  .iterates_over_content());
  EXPECT_TRUE(Template::parse("{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}"
                              "{% for p in m.content | selectattr('type', 'equalto', 'text') %}{{ p.text }}{% endfor %}"
                              "{% endif %}{% endfor %}")
                  .iterates_over_content());
  EXPECT_FALSE(Template::parse("{% for m in messages %}{{ m.content }}{% endfor %}").iterates_over_content());
}

}  // namespace
}  // namespace nibble::jinja
