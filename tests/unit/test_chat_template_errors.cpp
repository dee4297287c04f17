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

}  // namespace
