// Prompt/completion pairs (TRL): {"prompt": "...", "completion": "..."} becomes one user turn and
// its answer, trimmed like every converter's text; TRL's conversational form, {"prompt":
// [messages], "completion": [messages]}, becomes the conversation of both lists in order.
#include "data/convert/chat_turns.h"
#include "data/convert/json_records.h"

namespace mf {
namespace {

std::optional<SftRecord> record_from_pair(const nlohmann::json& j) {
  const auto prompt = j.find("prompt"), completion = j.find("completion");
  if (prompt == j.end()) throw RecordError("missing field \"prompt\"");
  if (completion == j.end()) throw RecordError("missing field \"completion\"");
  if (prompt->is_string() && completion->is_string()) return record_from_fields(j, "prompt", nullptr, "completion");
  if (prompt->is_array() && completion->is_array()) {
    std::vector<KeyedTurn> turns = read_turns(j, "prompt", openai_messages_spelling());
    std::vector<KeyedTurn> answer = read_turns(j, "completion", openai_messages_spelling());
    turns.insert(turns.end(), std::make_move_iterator(answer.begin()), std::make_move_iterator(answer.end()));
    return record_from_turns(std::move(turns));
  }
  throw RecordError(cat("fields \"prompt\" and \"completion\" must both be strings or both lists of {role, content} "
                        "messages, got ", prompt->type_name(), " and ", completion->type_name()));
}

}  // namespace

Format prompt_completion_format() {
  Format f;
  f.name = "prompt_completion";
  f.description = "JSONL (or JSON array) of {prompt, completion}, strings or message lists: TRL";
  f.sniff = [](const FileSample& s) { return has_fields(s, {"prompt", "completion"}); };
  f.convert = [](const ConvertInput& in, BadRecordPolicy& bad) {
    return convert_json_records(in, bad, record_from_pair);
  };
  return f;
}

}  // namespace mf
