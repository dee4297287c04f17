// SFT sequences for the real SmolLM2-135M-Instruct (GGUF tokenizer and chat template, read by
// moeforge) must equal what a Hugging Face pipeline builds from the same records
// (gen_sft_smollm2.py: jinja2 + `tokenizers`): the same ids, loss on the answer tokens only.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "compare.h"
#include "data/sft_tokenize.h"
#include "infer/bundle.h"
#include "infer/model_files.h"

namespace {

using nlohmann::json;

std::string fixture_dir() {
  const char* dir = std::getenv("MOEFORGE_FIXTURES");
  return dir ? dir : "../fixtures/sft_smollm2";
}

TEST(SmolLM2Sft, TokensAndAnswerMaskMatchHf) {
  const std::string model = mf::test::smollm2_gguf_path();
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " not found (run scripts/fetch-smollm2.sh)";
  std::ifstream in(fixture_dir() + "/cases.json");
  ASSERT_TRUE(in) << "fixtures missing in " << fixture_dir() << " (run via ctest)";
  std::stringstream ss;
  ss << in.rdbuf();
  const json fx = json::parse(ss.str());

  mf::TokenizerFiles tf = mf::load_gguf_tokenizer_files(model);
  ASSERT_FALSE(tf.chat_template.empty());
  const auto tmpl = mf::model_chat_template(*tf.tokenizer, tf.chat_template, tf.chat_template_origin);
  const mf::RenderChat render = [&](const std::vector<mf::ChatTurn>& turns, bool gen) {
    std::vector<mf::ChatMessage> m;
    for (const auto& t : turns) m.push_back({t.role, t.content});
    return tmpl->render(m, gen);
  };
  ASSERT_EQ(fx["cases"].size(), 4u);
  for (const auto& c : fx["cases"]) {
    const mf::SftRecord r = mf::sft_record_from_json(c["record"]);
    std::vector<int32_t> tokens;
    std::vector<uint8_t> mask;
    mf::tokenize_sft_record(r, *tf.tokenizer, render, tokens, mask);
    EXPECT_EQ(tokens, c["ids"].get<std::vector<int32_t>>()) << r.instruction;
    EXPECT_EQ(std::vector<int>(mask.begin(), mask.end()), c["mask"].get<std::vector<int>>()) << r.instruction;
    std::vector<int32_t> answer;
    for (size_t i = 0; i < tokens.size(); ++i)
      if (mask[i]) answer.push_back(tokens[i]);
    EXPECT_EQ(tf.tokenizer->decode(answer), c["answer"].get<std::string>());
  }
}

// Whole conversations: every assistant turn scored. The reference finds the turns in the text
// rendered once and tokenized in one piece (character offsets), not by rendering prefixes as
// moeforge does, so both the ids and the spans are checked independently.
TEST(SmolLM2Sft, EveryAssistantTurnOfAConversationMatchesHf) {
  const std::string model = mf::test::smollm2_gguf_path();
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " not found (run scripts/fetch-smollm2.sh)";
  std::ifstream in(fixture_dir() + "/cases.json");
  ASSERT_TRUE(in) << "fixtures missing in " << fixture_dir() << " (run via ctest)";
  std::stringstream ss;
  ss << in.rdbuf();
  const json fx = json::parse(ss.str());
  mf::TokenizerFiles tf = mf::load_gguf_tokenizer_files(model);
  const auto tmpl = mf::model_chat_template(*tf.tokenizer, tf.chat_template, tf.chat_template_origin);
  const mf::RenderChat render = [&](const std::vector<mf::ChatTurn>& turns, bool gen) {
    std::vector<mf::ChatMessage> m;
    for (const auto& t : turns) m.push_back({t.role, t.content});
    return tmpl->render(m, gen);
  };
  ASSERT_EQ(fx["conversations"].size(), 3u);
  for (const auto& c : fx["conversations"]) {
    const mf::SftRecord r = mf::sft_record_from_json(c["record"]);
    ASSERT_TRUE(r.loss_on_history);
    std::vector<int32_t> tokens;
    std::vector<uint8_t> mask;
    mf::tokenize_sft_record(r, *tf.tokenizer, render, tokens, mask, mf::AssistantTurns::all);
    EXPECT_EQ(tokens, c["ids"].get<std::vector<int32_t>>()) << r.instruction;
    EXPECT_EQ(std::vector<int>(mask.begin(), mask.end()), c["mask"].get<std::vector<int>>()) << r.instruction;
    std::vector<std::string> scored;
    for (size_t i = 0; i < tokens.size();) {
      size_t j = i;
      while (j < tokens.size() && mask[j] == mask[i]) ++j;
      if (mask[i]) scored.push_back(tf.tokenizer->decode(std::vector<int32_t>(tokens.begin() + i, tokens.begin() + j)));
      i = j;
    }
    EXPECT_EQ(scored, c["scored"].get<std::vector<std::string>>());
  }
}

}  // namespace
