// Anthropic hh-rlhf: {"chosen", "rejected"}, each a whole conversation as text with turns
// introduced by "\n\nHuman:" and "\n\nAssistant:". The "chosen" conversation is used: its final
// assistant turn is the answer, the human turn before it the instruction, and every earlier turn
// the history (kept whole: the earlier turns are what makes a red-teaming request harmful or not).
// Conversations whose final assistant turn is empty are dropped.
#include "data/convert/json_records.h"
#include "data/convert/text_clean.h"

namespace mf {
namespace {

constexpr std::string_view kHuman = "\n\nHuman:";
constexpr std::string_view kAssistant = "\n\nAssistant:";

// Turns in order; consecutive turns of one speaker are joined (a few conversations have two
// "Human:" turns in a row).
std::vector<ChatTurn> split_turns(const std::string& text) {
  std::vector<ChatTurn> turns;
  size_t pos = text.find_first_not_of(" \t\r\n");
  if (pos == std::string::npos) return turns;
  // The text starts with the first marker; put back the blank line trimmed off above.
  std::string t = "\n\n" + text.substr(pos);
  pos = 0;
  while (pos < t.size()) {
    const bool human = t.compare(pos, kHuman.size(), kHuman) == 0;
    const bool assistant = t.compare(pos, kAssistant.size(), kAssistant) == 0;
    if (!human && !assistant)
      throw RecordError("conversation in \"chosen\" does not start with \"Human:\" or \"Assistant:\"");
    const size_t start = pos + (human ? kHuman.size() : kAssistant.size());
    const size_t next = std::min(t.find(kHuman, start), t.find(kAssistant, start));
    std::string content = trim(std::string_view(t).substr(start, next == std::string::npos ? std::string::npos : next - start));
    const std::string role = human ? "user" : "assistant";
    if (!turns.empty() && turns.back().role == role) {
      if (!content.empty()) turns.back().content += (turns.back().content.empty() ? "" : "\n\n") + content;
    } else {
      turns.push_back({role, std::move(content)});
    }
    pos = next;
  }
  return turns;
}

std::optional<SftRecord> record_from_conversation(const std::string& text) {
  std::vector<ChatTurn> turns = split_turns(text);
  if (turns.empty() || turns.back().role != "assistant" || turns.back().content.empty()) return std::nullopt;
  if (turns.size() < 2 || turns[turns.size() - 2].content.empty())
    throw RecordError("conversation in \"chosen\" has no human turn before its final assistant turn");
  SftRecord r;
  r.output = std::move(turns.back().content);
  r.instruction = std::move(turns[turns.size() - 2].content);
  turns.resize(turns.size() - 2);
  // Chat templates expect the history to open with a user turn.
  if (!turns.empty() && turns.front().role == "assistant") turns.erase(turns.begin());
  r.history = std::move(turns);
  return r;
}

}  // namespace

Format hh_rlhf_format() {
  Format f;
  f.name = "hh_rlhf";
  f.description = "JSONL of {chosen, rejected} Human:/Assistant: conversations: Anthropic hh-rlhf";
  f.sniff = [](const FileSample& s) { return has_fields(s, {"chosen"}) && s.first["chosen"].is_string(); };
  f.convert = [](const ConvertInput& in, BadRecordPolicy& bad) {
    return convert_json_records(in, bad, [](const nlohmann::json& j) {
      return record_from_conversation(required_string(j, "chosen"));
    });
  };
  return f;
}

}  // namespace mf
