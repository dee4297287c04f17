// Spider text-to-SQL: {"db_id", "question", "query"} plus the schemas of tables.json. The record
// asks for an SQLite query answering the question (instruction), shows the database's schema
// as CREATE TABLE lines (input) and answers with the query, whitespace tidied (output).
#include <filesystem>

#include "data/convert/json_records.h"
#include "data/convert/spider_schema.h"
#include "data/convert/text_clean.h"

namespace mf {
namespace {

constexpr const char* kTablesFileName = "spider_tables.json";

// Spider's queries carry tokeniser spacing ("name ,  country"). Outside string literals runs of
// whitespace become one space and commas lose the space before them; literals stay verbatim.
std::string tidy_sql(const std::string& sql) {
  std::string out;
  char quote = 0;
  bool pending_space = false;
  for (char c : trim(sql)) {
    if (quote) {
      out.push_back(c);
      if (c == quote) quote = 0;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      pending_space = true;
      continue;
    }
    if (pending_space && c != ',' && !out.empty()) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
    if (c == '\'' || c == '"') quote = c;
  }
  return out;
}

std::string tables_path(const ConvertInput& in) {
  if (auto it = in.companions.find("spider_tables"); it != in.companions.end()) return it->second;
  const std::filesystem::path beside = std::filesystem::path(in.path).parent_path() / kTablesFileName;
  MF_CHECK(std::filesystem::is_regular_file(beside), in.path, ": Spider questions need their schema file (",
           kTablesFileName, " beside it, or pass --tables FILE)");
  return beside.string();
}

Converted convert_spider(const ConvertInput& in, BadRecordPolicy& bad) {
  BadRecordPolicy schema_errors;  // a broken schema file is an error even with --skip-bad
  const std::string tables = tables_path(in);
  const std::map<std::string, std::string> schemas = read_spider_schemas(tables, schema_errors);
  return convert_json_records(in, bad, [&](const nlohmann::json& j) -> std::optional<SftRecord> {
    const std::string db = required_string(j, "db_id");
    const auto schema = schemas.find(db);
    if (schema == schemas.end()) throw RecordError(cat("db_id \"", db, "\" has no schema in ", tables));
    SftRecord r;
    const std::string question = trim(required_string(j, "question"));
    r.output = tidy_sql(required_string(j, "query"));
    if (question.empty() || r.output.empty()) return std::nullopt;
    r.instruction = "Write an SQLite query that answers this question: " + question;
    r.input = "Database \"" + db + "\":\n" + schema->second;
    return r;
  });
}

}  // namespace

Format spider_format() {
  Format f;
  f.name = "spider";
  f.description = "JSONL of {db_id, question, query} + tables.json schemas (--tables): Spider text-to-SQL";
  f.sniff = [](const FileSample& s) { return has_fields(s, {"db_id", "question", "query"}); };
  f.convert = convert_spider;
  return f;
}

}  // namespace mf
