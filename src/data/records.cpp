#include "data/records.h"

#include <filesystem>
#include <fstream>

#include "core/mapped_file.h"
#include "tokenizer/unicode.h"

namespace mf {

void BadRecordPolicy::report(const std::string& file, int64_t line, const std::string& reason) {
  // The reason may quote the record's own bytes; invalid UTF-8 there must not break the JSON
  // summary that lists skipped records (skipping is the point).
  std::string where = cat(file, ":", line, ": ", unicode::valid_utf8(reason));
  if (!skip_) throw Error(where + " (to skip bad records: --skip-bad, or data.skip_bad in a recipe)");
  ++skipped_;
  if (examples_.size() < 10) examples_.push_back(std::move(where));
}

namespace {

void handle(const std::string& path, int64_t line, BadRecordPolicy& bad, const std::string& text,
            const std::function<void(const nlohmann::json&, int64_t)>& fn) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    bad.report(path, line, cat("malformed JSON: ", e.what()));
    return;
  }
  if (!j.is_object()) {
    bad.report(path, line, cat("expected a JSON object, got ", j.type_name()));
    return;
  }
  try {
    fn(j, line);
  } catch (const RecordError& e) {
    bad.report(path, line, e.what());
  }
}

}  // namespace

void read_jsonl(const std::string& path, BadRecordPolicy& bad,
                const std::function<void(const nlohmann::json&, int64_t line)>& fn) {
  MF_CHECK(std::filesystem::is_regular_file(path), path, ": no such file");
  std::ifstream in(path, std::ios::binary);
  MF_CHECK(in, path, ": cannot open");
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    handle(path, n, bad, line, fn);
  }
}

void read_json_array(const std::string& path, BadRecordPolicy& bad,
                     const std::function<void(const nlohmann::json&, int64_t line)>& fn) {
  MF_CHECK(std::filesystem::is_regular_file(path), path, ": no such file");
  const std::string text = read_text_file(path);
  size_t i = 0;
  int64_t line = 1;
  auto skip_space = [&] {
    for (; i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'); ++i)
      if (text[i] == '\n') ++line;
  };
  skip_space();
  if (i + 3 <= text.size() && text.compare(i, 3, "\xEF\xBB\xBF") == 0) i += 3;  // UTF-8 BOM
  skip_space();
  MF_CHECK(i < text.size() && text[i] == '[', path, ":", line, ": expected a JSON array of records ('[')");
  ++i;
  // Split the array at top-level commas by tracking strings and nesting, so one bad element
  // is reported at its own line and the others still parse.
  while (true) {
    skip_space();
    MF_CHECK(i < text.size(), path, ":", line, ": truncated JSON array (no closing ']')");
    if (text[i] == ']') break;
    const size_t start = i;
    const int64_t start_line = line;
    int depth = 0;
    bool in_string = false, escaped = false;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '\n') ++line;
      if (in_string) {
        if (escaped) escaped = false;
        else if (c == '\\') escaped = true;
        else if (c == '"') in_string = false;
        continue;
      }
      if (c == '"') in_string = true;
      else if (c == '{' || c == '[') ++depth;
      else if (c == '}' || c == ']') {
        // Only ']' ends the array. A stray '}' stays in its (malformed) element: ending the
        // element there without consuming it made the next element empty, forever.
        if (depth == 0 && c == ']') break;
        if (depth > 0) --depth;
      } else if (c == ',' && depth == 0) break;
    }
    if (i >= text.size()) {
      bad.report(path, start_line, "truncated JSON array: this element never ends");
      return;
    }
    handle(path, start_line, bad, text.substr(start, i - start), fn);
    if (text[i] == ',') ++i;
  }
}

std::string required_string(const nlohmann::json& record, const char* field) {
  auto it = record.find(field);
  if (it == record.end()) throw RecordError(cat("missing field \"", field, "\""));
  if (!it->is_string()) throw RecordError(cat("field \"", field, "\" must be a string, got ", it->type_name()));
  return it->get<std::string>();
}

std::string optional_string(const nlohmann::json& record, const char* field) {
  auto it = record.find(field);
  if (it == record.end() || it->is_null()) return "";
  if (!it->is_string()) throw RecordError(cat("field \"", field, "\" must be a string, got ", it->type_name()));
  return it->get<std::string>();
}

}  // namespace mf
