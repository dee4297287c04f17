#include "data/convert/chat_turns.h"

#include <algorithm>

#include "data/convert/text_clean.h"
#include "data/records.h"

namespace mf {
namespace {

std::string known_roles(const TurnSpelling& s) {
  std::string out;
  for (const auto& [name, role] : s.roles) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

const TurnSpelling& openai_messages_spelling() {
  static const TurnSpelling s{"role", "content", {{"system", "system"}, {"user", "user"}, {"assistant", "assistant"}}};
  return s;
}

const TurnSpelling& sharegpt_spelling() {
  static const TurnSpelling s{"from", "value",
                              {{"system", "system"}, {"human", "user"}, {"user", "user"},
                               {"gpt", "assistant"}, {"assistant", "assistant"}}};
  return s;
}

std::vector<KeyedTurn> read_turns(const nlohmann::json& record, const char* field, const TurnSpelling& spelling) {
  const auto list = record.find(field);
  if (list == record.end()) throw RecordError(cat("missing field \"", field, "\""));
  if (!list->is_array())
    throw RecordError(cat("field \"", field, "\" must be a list of {", spelling.role_key, ", ", spelling.content_key,
                          "} turns, got ", list->type_name()));
  if (list->size() > kMaxConversationTurns)
    throw RecordError(cat("field \"", field, "\" holds ", list->size(), " turns, more than a conversation may (",
                          kMaxConversationTurns, ")"));
  std::vector<KeyedTurn> turns;
  turns.reserve(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    const nlohmann::json& t = (*list)[i];
    const std::string key = cat(field, "[", i, "]");
    if (!t.is_object())
      throw RecordError(cat(key, ": expected a {", spelling.role_key, ", ", spelling.content_key, "} object, got ",
                            t.type_name()));
    const auto role = t.find(spelling.role_key);
    if (role == t.end()) throw RecordError(cat(key, ".", spelling.role_key, ": missing"));
    if (!role->is_string())
      throw RecordError(cat(key, ".", spelling.role_key, ": expected a string, got ", role->type_name()));
    const auto mapped = spelling.roles.find(role->get<std::string>());
    if (mapped == spelling.roles.end())
      throw RecordError(cat(key, ".", spelling.role_key, ": unknown role \"", role->get<std::string>(), "\" (known: ",
                            known_roles(spelling), ")"));
    // An assistant turn that calls tools carries its call outside the content; training on the
    // content alone would teach a different turn.
    for (const char* tools : {"tool_calls", "function_call"})
      if (const auto c = t.find(tools); c != t.end() && !c->is_null())
        throw RecordError(cat(key, ".", tools, ": tool calls are not read (plain text turns only)"));
    const auto content = t.find(spelling.content_key);
    if (content == t.end()) throw RecordError(cat(key, ".", spelling.content_key, ": missing"));
    if (!content->is_string())
      throw RecordError(cat(key, ".", spelling.content_key, ": expected a string, got ", content->type_name(),
                            content->is_array() ? " (content as a list of parts is not read)" : ""));
    turns.push_back({mapped->second, content->get<std::string>(), key});
  }
  return turns;
}

std::optional<SftRecord> record_from_turns(std::vector<KeyedTurn> turns) {
  if (turns.size() > kMaxConversationTurns)
    throw RecordError(cat("the conversation holds ", turns.size(), " turns, more than a conversation may (",
                          kMaxConversationTurns, ")"));
  std::vector<ChatTurn> merged;
  bool asked = false;  // a user turn came before
  for (size_t i = 0; i < turns.size(); ++i) {
    KeyedTurn& t = turns[i];
    std::string content = trim(t.content);
    if (t.role == "system") {
      if (i != 0) throw RecordError(cat(t.key, ": a system turn is read only as the first turn"));
      if (!content.empty()) merged.push_back({"system", std::move(content)});
      continue;
    }
    if (t.role == "assistant" && !asked) continue;
    asked = true;
    if (!merged.empty() && merged.back().role == t.role) {
      if (!content.empty()) merged.back().content += (merged.back().content.empty() ? "" : "\n\n") + content;
    } else {
      merged.push_back({t.role, std::move(content)});
    }
  }
  while (!merged.empty() && merged.back().role != "assistant") merged.pop_back();
  // Merged turns alternate and open with a user turn (after a system turn), so the last
  // assistant turn, when there is one, follows a user turn.
  if (merged.size() < 2 || merged.back().content.empty() || merged[merged.size() - 2].content.empty())
    return std::nullopt;
  SftRecord r;
  r.output = std::move(merged.back().content);
  r.instruction = std::move(merged[merged.size() - 2].content);
  merged.resize(merged.size() - 2);
  r.loss_on_history =
      std::any_of(merged.begin(), merged.end(), [](const ChatTurn& t) { return t.role == "assistant"; });
  r.history = std::move(merged);
  return r;
}

}  // namespace mf
