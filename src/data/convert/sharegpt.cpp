// ShareGPT conversations (axolotl's sharegpt / chat_template datasets): {"conversations":
// [{"from": system|human|gpt (or user|assistant), "value": "..."}, ...]}. The whole
// conversation becomes one record, as for chat messages.
#include "data/convert/chat_turns.h"
#include "data/convert/json_records.h"

namespace mf {

Format sharegpt_format() {
  Format f;
  f.name = "sharegpt";
  f.description = "JSONL (or JSON array) of {conversations: [{from, value}]}: ShareGPT / axolotl";
  f.sniff = [](const FileSample& s) {
    return has_fields(s, {"conversations"}) && s.first["conversations"].is_array();
  };
  f.convert = [](const ConvertInput& in, BadRecordPolicy& bad) {
    return convert_json_records(in, bad, [](const nlohmann::json& j) {
      return record_from_turns(read_turns(j, "conversations", sharegpt_spelling()));
    });
  };
  return f;
}

}  // namespace mf
