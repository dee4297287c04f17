// Chat messages (TRL / OpenAI format): {"messages": [{"role": system|user|assistant,
// "content": "..."}, ...]}, one conversation per record, any number of turns. The whole
// conversation becomes one record; SFT scores every assistant turn (data.loss_on).
#include "data/convert/chat_turns.h"
#include "data/convert/json_records.h"

namespace mf {

Format messages_format() {
  Format f;
  f.name = "messages";
  f.description = "JSONL (or JSON array) of {messages: [{role, content}]}: TRL / OpenAI chat conversations";
  f.sniff = [](const FileSample& s) { return has_fields(s, {"messages"}) && s.first["messages"].is_array(); };
  f.convert = [](const ConvertInput& in, BadRecordPolicy& bad) {
    return convert_json_records(in, bad, [](const nlohmann::json& j) {
      return record_from_turns(read_turns(j, "messages", openai_messages_spelling()));
    });
  };
  return f;
}

}  // namespace mf
