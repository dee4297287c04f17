// The unified instruction record every converter writes and every SFT step reads:
//   {"instruction", "input"?, "output", "domain", "source", "history"?}
// `history` holds earlier turns of a multi-turn conversation ([{"role","content"}], oldest
// first, roles "user"/"assistant", and "system" as the first turn only); the record's own turn
// is instruction(+input) -> output. `loss_on_history` (written only when true) marks a record
// that is a whole conversation from chat-format data: its history's assistant turns are answers
// to learn too. Without it the history is context only (DailyDialog and hh-rlhf records, whose
// history is cut from a longer dialogue, as before).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/records.h"

namespace mf {

struct ChatTurn {
  std::string role;     // "system", "user" or "assistant"
  std::string content;
};

// The most turns one record may hold: a conversation's SFT masks render it once per assistant
// turn, so the work grows with the square of its length.
constexpr size_t kMaxConversationTurns = 1024;

struct SftRecord {
  std::string instruction;
  std::string input;     // optional context (a passage, a schema, code); "" when absent
  std::string output;
  std::string domain;    // one of the domain names of the mapping (e.g. "Coder")
  std::string source;    // the dataset it came from (e.g. "code_alpaca_2k")
  std::vector<ChatTurn> history;
  bool loss_on_history = false;  // the history's assistant turns are answers too (see above)
  std::string category;  // a source's own label used by domain mapping (e.g. Dolly's); not written
};

// Domain names compare without case: `--domain coder` selects Coder's records, and the expert
// named "Coder" in a model's expert_names is that domain's expert. The key names compare by:
std::string domain_key(const std::string& name);
// The index of the expert named after `domain` in expert_names, or -1.
int expert_of_domain(const std::string& domain, const std::vector<std::string>& expert_names);

// The user message of the record's own turn: the instruction, then the input after a blank line.
std::string user_message(const SftRecord& r);

nlohmann::json to_json(const SftRecord& r);
// Validates types and required fields (instruction and output non-empty strings); throws
// RecordError naming the field.
SftRecord sft_record_from_json(const nlohmann::json& j);

// Every record of a unified JSONL file; bad lines go through `bad` (file:line: reason).
std::vector<SftRecord> read_sft_jsonl(const std::string& path, BadRecordPolicy& bad);
// Writes records one per line, atomically (temporary file + rename).
void write_sft_jsonl(const std::string& path, const std::vector<SftRecord>& records);

}  // namespace mf

namespace mf {

// True when `path` is a .jsonl file whose first record has an "instruction" field (the unified
// instruction format rather than {"text"} pretraining documents).
bool looks_like_sft_jsonl(const std::string& path);

}  // namespace mf
