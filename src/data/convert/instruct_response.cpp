// Instruction/response pairs: {"instruction", "input", "response"} (GPTeacher's sets).
#include "data/convert/json_records.h"

namespace mf {

Format instruct_response_format() {
  Format f;
  f.name = "instruct_response";
  f.description = "JSON array (or JSONL) of {instruction, input, response}: GPTeacher";
  f.sniff = [](const FileSample& s) {
    return has_fields(s, {"instruction", "response"}) && !s.first.contains("context");
  };
  f.convert = [](const ConvertInput& in, BadRecordPolicy& bad) {
    return convert_json_records(in, bad, [](const nlohmann::json& j) {
      return record_from_fields(j, "instruction", "input", "response");
    });
  };
  return f;
}

}  // namespace mf
