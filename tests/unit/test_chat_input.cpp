// How typed lines become chat messages: one line, a trailing backslash, """ blocks, pastes.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "infer/chat_input.h"

namespace {

// Feeds lines; returns the messages completed, in order.
std::vector<std::string> feed(mf::ChatInputAssembler& in, const std::vector<std::string>& lines,
                              const std::vector<bool>& pasted = {}) {
  std::vector<std::string> out;
  for (size_t i = 0; i < lines.size(); ++i)
    if (auto m = in.add(lines[i], i < pasted.size() && pasted[i])) out.push_back(*m);
  return out;
}

TEST(ChatInput, OneLineIsOneMessage) {
  mf::ChatInputAssembler in;
  EXPECT_EQ(feed(in, {"hello", "world\r"}), (std::vector<std::string>{"hello", "world"}));
  EXPECT_FALSE(in.continuing());
  EXPECT_EQ(in.add(""), std::nullopt);  // an empty line sends nothing
  EXPECT_FALSE(in.continuing());
}

TEST(ChatInput, TrailingBackslashContinues) {
  mf::ChatInputAssembler in;
  EXPECT_EQ(in.add("first \\"), std::nullopt);
  EXPECT_TRUE(in.continuing());
  EXPECT_EQ(in.add("second\\"), std::nullopt);
  EXPECT_EQ(in.add("third"), std::optional<std::string>("first \nsecond\nthird"));
  EXPECT_FALSE(in.continuing());
}

TEST(ChatInput, TripleQuoteBlockIsOneMessage) {
  mf::ChatInputAssembler in;
  // Inside a block, empty lines and backslashes are text.
  EXPECT_EQ(feed(in, {"\"\"\"", "def f():", "", "    return 1 \\", "\"\"\""}),
            (std::vector<std::string>{"def f():\n\n    return 1 \\"}));
  EXPECT_EQ(feed(in, {"\"\"\"Summarise:", "a", "b\"\"\""}), (std::vector<std::string>{"Summarise:\na\nb"}));
  EXPECT_EQ(feed(in, {"\"\"\"all on one line\"\"\""}), (std::vector<std::string>{"all on one line"}));
  EXPECT_TRUE(in.add("\"\"\"").has_value() == false);
  EXPECT_TRUE(in.continuing());
  EXPECT_EQ(in.add("\"\"\""), std::nullopt);  // an empty block sends nothing
  EXPECT_FALSE(in.continuing());
}

TEST(ChatInput, PastedLinesAreOneMessage) {
  mf::ChatInputAssembler in;
  // "one\ntwo\nthree" pasted, then Enter: the first two lines ended inside the paste.
  EXPECT_EQ(feed(in, {"one", "two", "three"}, {true, true, false}), (std::vector<std::string>{"one\ntwo\nthree"}));
  // A paste that ends with its own newline: Enter on the empty line after it sends.
  EXPECT_EQ(feed(in, {"x", "y", ""}, {true, true, false}), (std::vector<std::string>{"x\ny"}));
}

TEST(ChatInput, ClearForgetsAMessageInProgress) {
  mf::ChatInputAssembler in;
  in.add("\"\"\"draft");
  EXPECT_TRUE(in.continuing());
  in.clear();
  EXPECT_FALSE(in.continuing());
  EXPECT_EQ(in.add("fresh"), std::optional<std::string>("fresh"));
}

}  // namespace
