// The loop every JSON-based converter shares: read the file's records (a JSON array or JSON
// Lines, whichever the file is), turn each into an instruction record or drop it, and stamp the
// source name.
#pragma once
#include <functional>
#include <initializer_list>
#include <optional>

#include "data/convert/formats.h"

namespace mf {

// One record's conversion: a record to keep, or nullopt to drop it (counted in
// Converted::dropped). Throw RecordError for a missing or mistyped field.
using RecordConversion = std::function<std::optional<SftRecord>(const nlohmann::json&)>;

Converted convert_json_records(const ConvertInput& in, BadRecordPolicy& bad, const RecordConversion& one);

// A record made of three string fields (`input_field` may be nullptr); leading and trailing
// whitespace is trimmed; nullopt when the instruction or the answer is blank.
std::optional<SftRecord> record_from_fields(const nlohmann::json& j, const char* instruction_field,
                                            const char* input_field, const char* output_field);

// Whether a sampled first record has every one of these fields (for sniffing).
bool has_fields(const FileSample& s, std::initializer_list<const char*> fields);

}  // namespace mf
