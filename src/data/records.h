// Reading record files line by line with one policy for bad records: a malformed line or a
// record missing a field is an error naming file:line and the reason, unless the user asked to
// skip bad records, in which case it is counted (and the first few remembered) and reading goes on.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mf {

// Thrown by a record handler for a record that parsed as JSON but is unusable (missing or
// mistyped field); the reader adds file:line.
struct RecordError : Error {
  using Error::Error;
};

class BadRecordPolicy {
 public:
  explicit BadRecordPolicy(bool skip = false) : skip_(skip) {}
  // Throws mf::Error "file:line: reason" unless skipping; otherwise counts it.
  void report(const std::string& file, int64_t line, const std::string& reason);
  bool skipping() const { return skip_; }
  int64_t skipped() const { return skipped_; }
  // Up to the first 10 problems seen, as "file:line: reason".
  const std::vector<std::string>& examples() const { return examples_; }

 private:
  bool skip_;
  int64_t skipped_ = 0;
  std::vector<std::string> examples_;
};

// Calls fn(record, line) for every non-blank line of a JSONL file. Malformed JSON, a line that
// is not an object, and a RecordError thrown by fn go through `bad`.
void read_jsonl(const std::string& path, BadRecordPolicy& bad,
                const std::function<void(const nlohmann::json&, int64_t line)>& fn);

// The same for a file holding one JSON array of objects (any layout: one record per line or
// pretty-printed); `line` is the line where each element starts. A syntax error inside one
// element reports that element's line; elements after it are still read when skipping.
void read_json_array(const std::string& path, BadRecordPolicy& bad,
                     const std::function<void(const nlohmann::json&, int64_t line)>& fn);

// A required string field of a record (RecordError naming the field if absent or not a string).
std::string required_string(const nlohmann::json& record, const char* field);
// An optional string field ("" if absent or null; RecordError if present with another type).
std::string optional_string(const nlohmann::json& record, const char* field);

}  // namespace mf
