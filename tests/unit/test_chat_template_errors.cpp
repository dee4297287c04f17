// Template errors name the template and line:col; unsupported constructs are refused.
#include <gtest/gtest.h>

#include "core/error.h"
#include "chat/chat_template.h"
#include "chat/jinja/template.h"

namespace {

std::string error_of(const std::string& source, const std::string& name = "t") {
  try {
    mf::ChatTemplate t(source, "<s>", "</s>", name);
    std::vector<mf::ChatMessage> msgs = {{"user", "hi"}};
    t.render(msgs, true);
  } catch (const mf::Error& e) {
    return e.what();
  }
  return "";
}

TEST(ChatTemplateErrors, NameAndPosition) {
  EXPECT_NE(error_of("ok\n  {% frobnicate %}", "cfg").find("cfg:2:6: unknown or unsupported statement 'frobnicate'"),
            std::string::npos)
      << error_of("ok\n  {% frobnicate %}", "cfg");
  EXPECT_NE(error_of("{{ 'abc }}").find("t:1:4: unterminated string literal"), std::string::npos);
  EXPECT_NE(error_of("{% if true %}x").find("unexpected end of template, expected 'elif' or 'else' or 'endif'"),
            std::string::npos);
  EXPECT_NE(error_of("{{ messages | nosuchfilter }}").find("t:1:13: unknown filter 'nosuchfilter'"), std::string::npos)
      << error_of("{{ messages | nosuchfilter }}");
  EXPECT_NE(error_of("{{ x is weird }}").find("unknown test 'weird'"), std::string::npos);
  EXPECT_NE(error_of("{{ nothing.attr }}").find("'nothing' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ raise_exception('roles must alternate') }}").find("roles must alternate"), std::string::npos);
  EXPECT_NE(error_of("{{ 1 + 'a' }}").find("unsupported operand types for +"), std::string::npos);
  EXPECT_NE(error_of("{# open comment").find("unterminated comment"), std::string::npos);
  EXPECT_NE(error_of("{% for x in %}{% endfor %}").find("expected an expression"), std::string::npos);
  EXPECT_NE(error_of("{{ (1 }}").find("t:1:7: unbalanced '}'"), std::string::npos) << error_of("{{ (1 }}");
  EXPECT_NE(error_of("{% raw %}x{% endraw %}").find("unsupported statement 'raw'"), std::string::npos);
}

TEST(ChatTemplate, RendersMessagesAndTokens) {
  mf::ChatTemplate t(mf::default_chatml_template(), "<s>", "</s>");
  std::vector<mf::ChatMessage> msgs = {{"system", "S"}, {"user", "U"}};
  EXPECT_EQ(t.render(msgs, true), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.family(), "chatml");
  mf::ChatTemplate b("{{ bos_token }}{{ messages|length }}{{ eos_token }}", "<s>", "</s>");
  EXPECT_EQ(b.render(msgs, false), "<s>2</s>");
}

TEST(Jinja, DeepRecursionIsAnErrorNotACrash) {
  mf::jinja::Template t("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "rec");
  EXPECT_THROW(t.render(mf::jinja::Value(mf::jinja::Dict{})), mf::Error);
}


// Templates come from strangers' model files: whatever their shape, a clear error and no crash,
// hang or runaway allocation (the bounds are in chat/jinja/limits.h).
std::string render_error(const std::string& source) {
  try {
    mf::jinja::Template t(source, "hostile");
    t.render(mf::jinja::Value(mf::jinja::Dict{}));
  } catch (const mf::Error& e) {
    return e.what();
  }
  return "";
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(JinjaHostile, DeepNestingIsRefusedBeforeTheStackRunsOut) {
  const int n = 100000;
  EXPECT_NE(render_error("{{ " + repeat("(", n) + "1" + repeat(")", n) + " }}").find("nested deeper than"),
            std::string::npos);
  EXPECT_NE(render_error("{{ " + repeat("[", n) + repeat("]", n) + " }}").find("nested deeper than"),
            std::string::npos);
  EXPECT_NE(render_error("{{ " + repeat("not ", n) + "1 }}").find("nested deeper than"), std::string::npos);
  EXPECT_NE(render_error("{{ " + repeat("-", n) + "1 }}").find("nested deeper than"), std::string::npos);
  EXPECT_NE(render_error(repeat("{% if true %}", n) + "x" + repeat("{% endif %}", n)).find("nested deeper than"),
            std::string::npos);
  // Left-deep chains are built without nesting but evaluated by recursion.
  EXPECT_NE(render_error("{{ 1" + repeat(" + 1", n) + " }}").find("nested deeper than"), std::string::npos);
  EXPECT_NE(render_error("{{ 'a'" + repeat(" | lower", n) + " }}").find("nested deeper than"), std::string::npos);
  EXPECT_NE(render_error("{{ x" + repeat(".y", n) + " }}").find("nested deeper than"), std::string::npos);
  // Real templates stay far inside the bounds.
  EXPECT_EQ(render_error("{{ " + repeat("(", 50) + "1" + repeat(")", 50) + " }}"), "");
  EXPECT_EQ(render_error("{{ 1" + repeat(" + 1", 300) + " }}"), "");
}

TEST(JinjaHostile, ArithmeticOverflowsAreErrors) {
  EXPECT_NE(render_error("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ -9223372036854775807 - 2 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ 4294967296 * 4294967296 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ (-9223372036854775807 - 1) // -1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ 2 ** 64 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ 99999999999999999999 }}").find("integer literal out of range"), std::string::npos);
  // Found by libFuzzer: an attribute index past int64 threw std::out_of_range through the renderer.
  EXPECT_NE(render_error("{{ [[1]] | join(',', '444444444444444444444444444444444') }}").find("out of range"),
            std::string::npos);
  EXPECT_NE(render_error("{{ (-9223372036854775807 - 1) | abs }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ range(1e300) }}").find("does not fit"), std::string::npos);
  mf::jinja::Template ok("{{ 2 ** 62 }} {{ 3 ** 0 }} {{ (-9223372036854775807 - 1) % -1 }} {{ -7 // 2 }}", "ok");
  EXPECT_EQ(ok.render(mf::jinja::Value(mf::jinja::Dict{})), "4611686018427387904 1 0 -4");
}

TEST(JinjaHostile, HugeExponentsRepetitionsAndLoopsAreBounded) {
  // Square-and-multiply: a huge exponent overflows at once instead of looping 10^18 times.
  EXPECT_EQ(render_error("{{ 1 ** 1000000000000000000 }}"), "");
  EXPECT_NE(render_error("{{ 3 ** 1000000000000000000 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ 'x' * 1000000000000 }}").find("repetition result larger than"), std::string::npos);
  EXPECT_NE(render_error("{{ [1] * 1000000000000 }}").find("repetition result larger than"), std::string::npos);
  EXPECT_NE(render_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
                .find("steps"),
            std::string::npos);
  EXPECT_NE(render_error("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}")
                .find("rendered text longer than"),
            std::string::npos);
  EXPECT_NE(render_error("{{ 'a' | indent(1000000000000) }}").find("indent width"), std::string::npos);
}

TEST(JinjaHostile, ValuesTheTemplateBuildsStayShallowAcyclicAndComparable) {
  // One level per loop iteration: refused at the nesting bound instead of overflowing the stack
  // when printed, compared or freed (found by the hostile-input suite: printing crashed).
  const std::string deep = "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}";
  EXPECT_NE(render_error(deep + "{{ ns.l }}").find("nested deeper than 256"), std::string::npos);
  EXPECT_NE(render_error(deep).find("nested deeper than 256"), std::string::npos);
  // A namespace made to contain itself.
  EXPECT_NE(render_error("{% set ns = namespace(l=[]) %}{% set ns.l = [ns] %}{{ ns }}").find("contains itself"),
            std::string::npos);
  // Shared halves: 2^60 items as printed or compared, a few dozen objects in memory.
  const std::string doubled = "{% set a = namespace(l=[1]) %}{% set b = namespace(l=[1]) %}{% for i in range(60) %}"
                              "{% set a.l = [a.l, a.l] %}{% set b.l = [b.l, b.l] %}{% endfor %}";
  EXPECT_NE(render_error(doubled + "{{ a.l == b.l }}").find("comparing values of more than"), std::string::npos);
  EXPECT_NE(render_error(doubled + "{{ a.l }}").find("printing a value longer than"), std::string::npos);
  EXPECT_NE(render_error(doubled + "{{ a.l | tojson }}").find("longer than"), std::string::npos);
  EXPECT_EQ(render_error(doubled + "{{ a.l == a.l }}"), "");  // one object equals itself, as in Python
  // Real templates nest a few levels.
  mf::jinja::Template ok("{% set ns = namespace(l=[]) %}{% for i in range(3) %}{% set ns.l = [ns.l] %}{% endfor %}"
                         "{{ ns.l }} {{ [[1, 2], [3]] < [[1, 2], [4]] }}",
                         "ok");
  EXPECT_EQ(ok.render(mf::jinja::Value(mf::jinja::Dict{})), "[[[[]]]] True");
}

}  // namespace
