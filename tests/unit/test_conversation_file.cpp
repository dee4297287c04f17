// chat's /save and /load files: the round trip, and a file from a stranger refused with the file
// and the key named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "infer/conversation_file.h"

namespace {
namespace fs = std::filesystem;

class ConversationFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moeforge_conv_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  // The error message load_conversation gives for `text`.
  std::string error_for(const std::string& text) {
    const std::string path = write("bad.json", text);
    try {
      mf::load_conversation(path);
    } catch (const mf::Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "accepted: " << text;
    return "";
  }
  fs::path dir_;
};

TEST_F(ConversationFile, RoundTripKeepsSystemPromptTurnsAndText) {
  mf::Conversation c;
  c.system_prompt = "Answer in \"French\".";
  c.turns = {{"user", "line one\nline two \\ with a backslash"},
             {"assistant", "Bonjour, caf\xc3\xa9 \xe2\x9c\x93"},
             {"user", "again"},
             {"assistant", ""}};
  const std::string path = (dir_ / "conv.json").string();
  mf::save_conversation(path, c);
  const mf::Conversation back = mf::load_conversation(path);
  EXPECT_EQ(back.system_prompt, c.system_prompt);
  ASSERT_EQ(back.turns.size(), c.turns.size());
  for (size_t i = 0; i < c.turns.size(); ++i) {
    EXPECT_EQ(back.turns[i].role, c.turns[i].role) << i;
    EXPECT_EQ(back.turns[i].content, c.turns[i].content) << i;
  }
  // OpenAI's message list: the system prompt is the first message.
  const std::string text = [&] {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  EXPECT_NE(text.find("\"messages\""), std::string::npos) << text;
  EXPECT_LT(text.find("\"system\""), text.find("\"user\"")) << text;
  // Saving over an existing file replaces it, and leaves no temporary file behind.
  mf::save_conversation(path, {"", {{"user", "only"}}});
  const mf::Conversation replaced = mf::load_conversation(path);
  EXPECT_EQ(replaced.system_prompt, "");
  ASSERT_EQ(replaced.turns.size(), 1u);
  EXPECT_EQ(replaced.turns[0].content, "only");
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1);
}

TEST_F(ConversationFile, EmptyConversationRoundTrips) {
  const std::string path = (dir_ / "empty.json").string();
  mf::save_conversation(path, {});
  const mf::Conversation back = mf::load_conversation(path);
  EXPECT_TRUE(back.system_prompt.empty());
  EXPECT_TRUE(back.turns.empty());
}

TEST_F(ConversationFile, BadFilesAreErrorsNamingFileAndKey) {
  struct Case {
    std::string text, expected;
  };
  const Case cases[] = {
      {"{\"messages\": [", "not valid JSON"},
      {"[1, 2]", "expected an object"},
      {"{}", "missing key 'messages'"},
      {R"({"messages": [], "model": "x"})", "unknown key 'model'"},
      {R"({"messages": {"role": "user"}})", "messages: expected an array"},
      {R"({"messages": ["hi"]})", "messages[0]: expected an object"},
      {R"({"messages": [{"role": "user"}]})", "messages[0]: missing key 'content'"},
      {R"({"messages": [{"content": "x"}]})", "messages[0]: missing key 'role'"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content: expected a string"},
      {R"({"messages": [{"role": 1, "content": "x"}]})", "messages[0].role: expected a string"},
      {R"({"messages": [{"role": "user", "content": "x", "name": "bob"}]})", "messages[0]: unknown key 'name'"},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "bot", "content": "y"}]})",
       "messages[1].role: expected \"system\", \"user\" or \"assistant\", got \"bot\""},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}]})",
       "messages[1].role: \"system\" may only be the first message"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\"}]}", "not valid JSON"},
  };
  for (const Case& c : cases) {
    const std::string err = error_for(c.text);
    EXPECT_NE(err.find("bad.json"), std::string::npos) << "no file name in: " << err;
    EXPECT_NE(err.find(c.expected), std::string::npos) << "for " << c.text << "\ngot: " << err;
  }
}

TEST_F(ConversationFile, MissingFileAndSizeCapsAreErrors) {
  try {
    mf::load_conversation((dir_ / "absent.json").string());
    ADD_FAILURE() << "a missing file loaded";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.json"), std::string::npos) << e.what();
  }
  // Too many messages: refused by count, before any of them is copied.
  std::string many = "{\"messages\": [";
  for (size_t i = 0; i <= mf::kMaxConversationMessages; ++i) many += i ? ",{\"role\":\"user\",\"content\":\"\"}" : "{\"role\":\"user\",\"content\":\"\"}";
  many += "]}";
  EXPECT_NE(error_for(many).find("more than a conversation file may hold"), std::string::npos);
  // A file larger than the cap is refused by its size, unread (a sparse file: no disk used).
  const fs::path big = dir_ / "big.json";
  std::ofstream(big) << "{}";
  fs::resize_file(big, mf::kMaxConversationFileBytes + 1);
  try {
    mf::load_conversation(big.string());
    ADD_FAILURE() << "an oversized file loaded";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("big.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bytes is more than"), std::string::npos) << e.what();
  }
}

}  // namespace
