// What the chat-format converters (messages, ShareGPT conversations, conversational
// prompt/completion) share: reading a list of turns with every error naming its key
// ("messages[3].role: ..."), and turning a whole conversation into one instruction record whose
// history's assistant turns are answers too (SftRecord::loss_on_history).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/sft_record.h"

namespace mf {

struct KeyedTurn {
  std::string role;     // system, user or assistant (after the format's names are mapped)
  std::string content;
  std::string key;      // where it came from, for errors: "messages[3]"
};

// How one format spells a turn: {role_key: NAME, content_key: TEXT}, NAME mapped to
// system/user/assistant through `roles` (ShareGPT's "human" -> "user").
struct TurnSpelling {
  const char* role_key;
  const char* content_key;
  std::map<std::string, std::string> roles;
};
const TurnSpelling& openai_messages_spelling();  // {role, content}: system, user, assistant
const TurnSpelling& sharegpt_spelling();         // {from, value}: system, human/user, gpt/assistant

// The turns of record[field]. RecordError naming the key for a missing or non-list field, more
// than kMaxConversationTurns turns, a turn that is not an object, an unknown role, content that
// is not a string (a list of content parts, null), or tool calls.
std::vector<KeyedTurn> read_turns(const nlohmann::json& record, const char* field, const TurnSpelling& spelling);

// One record for a whole conversation: contents trimmed; a system turn only as the first turn
// (RecordError otherwise), dropped when empty; consecutive turns of one speaker joined with a
// blank line; assistant turns before the first user turn dropped (nothing asked for them); turns
// after the last assistant turn cut (nothing answers them). The last assistant turn is the
// output, the user turn before it the instruction, the rest the history, with loss_on_history
// set when the history holds an assistant turn. nullopt (dropped: nothing to learn) when no
// assistant turn remains or the last one or its user turn is empty.
std::optional<SftRecord> record_from_turns(std::vector<KeyedTurn> turns);

}  // namespace mf
