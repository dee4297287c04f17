// Chat templates rendered by our Jinja interpreter must be byte-identical to Python jinja2
// configured as transformers configures it (fixtures from gen_chat_template.py).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "chat/chat_template.h"

namespace {

nlohmann::json load_cases() {
  const char* dir = std::getenv("MOEFORGE_FIXTURES");
  if (!dir) return nullptr;
  std::ifstream in(std::string(dir) + "/cases.json");
  if (!in) return nullptr;
  return nlohmann::json::parse(in);
}

TEST(ChatTemplateParity, MatchesPythonJinja2) {
  nlohmann::json cases = load_cases();
  if (cases.is_null()) GTEST_SKIP() << "fixtures missing: run gen_chat_template.py (ctest does)";
  ASSERT_GT(cases.size(), 50u);
  int rendered = 0, errors = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    std::vector<mf::ChatMessage> msgs;
    for (const auto& m : c["messages"]) msgs.push_back({m["role"], m["content"]});
    mf::ChatTemplate t(c["template"], c["bos_token"], c["eos_token"], c["name"]);
    if (c.contains("error")) {
      try {
        t.render(msgs, c["add_generation_prompt"]);
        ADD_FAILURE() << "expected the template to raise: " << c["error"];
      } catch (const mf::Error& e) {
        EXPECT_NE(std::string(e.what()).find(c["error"].get<std::string>()), std::string::npos) << e.what();
      }
      ++errors;
      continue;
    }
    std::string got = t.render(msgs, c["add_generation_prompt"]);
    EXPECT_EQ(got, c["expected"].get<std::string>());
    ++rendered;
  }
  EXPECT_GT(rendered, 90);
  EXPECT_GT(errors, 0);
}

TEST(ChatTemplateParity, FamiliesAreRecognised) {
  nlohmann::json cases = load_cases();
  if (cases.is_null()) GTEST_SKIP() << "fixtures missing";
  for (const auto& c : cases) {
    std::string name = c["name"];
    std::string want = name.rfind("llama3", 0) == 0 ? "llama3"
                       : name.rfind("mistral", 0) == 0 ? "mistral"
                       : name.rfind("zephyr", 0) == 0 ? "zephyr"
                       : name.rfind("features", 0) == 0 ? "unknown" : "chatml";
    EXPECT_EQ(mf::chat_template_family(c["template"]), want) << name;
  }
}

}  // namespace
