#include "data/convert/json_records.h"

#include "data/convert/text_clean.h"

namespace mf {

Converted convert_json_records(const ConvertInput& in, BadRecordPolicy& bad, const RecordConversion& one) {
  Converted out;
  const auto each = [&](const nlohmann::json& j, int64_t) {
    std::optional<SftRecord> r = one(j);
    if (!r) {
      ++out.dropped;
      return;
    }
    r->source = in.source;
    out.records.push_back(std::move(*r));
  };
  if (file_layout(in.path) == FileSample::Layout::json_array) read_json_array(in.path, bad, each);
  else read_jsonl(in.path, bad, each);
  return out;
}

std::optional<SftRecord> record_from_fields(const nlohmann::json& j, const char* instruction_field,
                                            const char* input_field, const char* output_field) {
  SftRecord r;
  r.instruction = trim(required_string(j, instruction_field));
  if (input_field) r.input = trim(optional_string(j, input_field));
  r.output = trim(required_string(j, output_field));
  if (r.instruction.empty() || r.output.empty()) return std::nullopt;
  return r;
}

bool has_fields(const FileSample& s, std::initializer_list<const char*> fields) {
  if (!s.first.is_object()) return false;
  for (const char* f : fields)
    if (!s.first.contains(f)) return false;
  return true;
}

}  // namespace mf
