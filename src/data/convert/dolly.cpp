// databricks-dolly-15k: {"instruction", "context", "response", "category"}. The context becomes
// the record's input; the category is kept for domain rules. Contexts quote Wikipedia, so
// reference marks ("[12]", "[citation needed]") are removed from context and response.
#include "data/convert/json_records.h"
#include "data/convert/text_clean.h"

namespace mf {

Format dolly_format() {
  Format f;
  f.name = "dolly";
  f.description = "JSONL of {instruction, context, response, category}: databricks-dolly-15k";
  f.sniff = [](const FileSample& s) { return has_fields(s, {"instruction", "context", "response"}); };
  f.convert = [](const ConvertInput& in, BadRecordPolicy& bad) {
    return convert_json_records(in, bad, [](const nlohmann::json& j) -> std::optional<SftRecord> {
      std::optional<SftRecord> r = record_from_fields(j, "instruction", "context", "response");
      if (!r) return r;
      r->input = trim(strip_citation_marks(r->input));
      r->output = trim(strip_citation_marks(r->output));
      r->category = trim(optional_string(j, "category"));
      if (r->output.empty()) return std::nullopt;
      return r;
    });
  };
  return f;
}

}  // namespace mf
