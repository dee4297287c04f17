// Alpaca: {"instruction", "input", "output"} records (Stanford Alpaca, Code Alpaca); "input"
// may be empty.
#include "data/convert/json_records.h"

namespace mf {

Format alpaca_format() {
  Format f;
  f.name = "alpaca";
  f.description = "JSON array (or JSONL) of {instruction, input, output}: Alpaca, Code Alpaca";
  f.sniff = [](const FileSample& s) { return has_fields(s, {"instruction", "output"}); };
  f.convert = [](const ConvertInput& in, BadRecordPolicy& bad) {
    return convert_json_records(in, bad, [](const nlohmann::json& j) {
      return record_from_fields(j, "instruction", "input", "output");
    });
  };
  return f;
}

}  // namespace mf
