// The "spider_tables" companion format (Spider's tables.json) and its schema rendering.
#include "data/convert/spider_schema.h"

#include <cctype>

#include "data/convert/json_records.h"

namespace mf {
namespace {

bool plain_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

std::string sql_name(const std::string& name) { return plain_identifier(name) ? name : "\"" + name + "\""; }

const nlohmann::json& array_field(const nlohmann::json& db, const char* field) {
  auto it = db.find(field);
  if (it == db.end() || !it->is_array()) throw RecordError(cat("field \"", field, "\" must be an array"));
  return *it;
}

int64_t column_index(const nlohmann::json& v, size_t columns, const char* field) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || size_t(v.get<int64_t>()) >= columns)
    throw RecordError(cat("field \"", field, "\" holds ", v.dump(), ", not a column index below ", columns));
  return v.get<int64_t>();
}

}  // namespace

std::string render_spider_schema(const nlohmann::json& db) {
  const nlohmann::json& tables = array_field(db, "table_names_original");
  const nlohmann::json& columns = array_field(db, "column_names_original");
  const nlohmann::json& types = array_field(db, "column_types");
  if (types.size() != columns.size())
    throw RecordError(cat("\"column_types\" has ", types.size(), " entries for ", columns.size(), " columns"));

  struct Column {
    int64_t table = -1;
    std::string name, type;
  };
  std::vector<Column> cols;
  for (size_t c = 0; c < columns.size(); ++c) {
    const nlohmann::json& col = columns[c];
    if (!col.is_array() || col.size() != 2 || !col[0].is_number_integer() || !col[1].is_string() || !types[c].is_string())
      throw RecordError(cat("column ", c, " of \"column_names_original\" is not [table index, name] with a string type"));
    const int64_t t = col[0].get<int64_t>();
    if (t >= int64_t(tables.size())) throw RecordError(cat("column ", c, " names table ", t, " of ", tables.size()));
    cols.push_back({t, col[1].get<std::string>(), types[c].get<std::string>()});
  }

  // Spider lists primary keys as column indices; newer releases group a composite key in a list.
  std::vector<std::vector<int64_t>> primary(tables.size());
  for (const nlohmann::json& pk : array_field(db, "primary_keys")) {
    std::vector<int64_t> key;
    if (pk.is_array())
      for (const auto& c : pk) key.push_back(column_index(c, cols.size(), "primary_keys"));
    else key.push_back(column_index(pk, cols.size(), "primary_keys"));
    for (int64_t c : key)
      if (cols[size_t(c)].table >= 0) primary[size_t(cols[size_t(c)].table)].push_back(c);
  }
  std::vector<std::vector<int64_t>> references(cols.size());
  for (const nlohmann::json& fk : array_field(db, "foreign_keys")) {
    if (!fk.is_array() || fk.size() != 2) throw RecordError("\"foreign_keys\" entries must be [column, referenced column]");
    references[size_t(column_index(fk[0], cols.size(), "foreign_keys"))].push_back(
        column_index(fk[1], cols.size(), "foreign_keys"));
  }

  std::string out;
  for (size_t t = 0; t < tables.size(); ++t) {
    if (!tables[t].is_string()) throw RecordError(cat("table ", t, " of \"table_names_original\" is not a string"));
    std::string line = "CREATE TABLE " + sql_name(tables[t].get<std::string>()) + " (";
    bool first = true;
    for (size_t c = 0; c < cols.size(); ++c) {
      if (cols[c].table != int64_t(t)) continue;
      line += (first ? "" : ", ") + sql_name(cols[c].name) + " " + cols[c].type;
      first = false;
      if (primary[t].size() == 1 && primary[t][0] == int64_t(c)) line += " PRIMARY KEY";
      for (int64_t r : references[c]) {
        const Column& ref = cols[size_t(r)];
        if (ref.table >= 0)
          line += " REFERENCES " + sql_name(tables[size_t(ref.table)].get<std::string>()) + "(" + sql_name(ref.name) + ")";
      }
    }
    if (primary[t].size() > 1) {
      line += ", PRIMARY KEY (";
      for (size_t k = 0; k < primary[t].size(); ++k) line += (k ? ", " : "") + sql_name(cols[size_t(primary[t][k])].name);
      line += ")";
    }
    out += line + ");\n";
  }
  if (!out.empty()) out.pop_back();
  return out;
}

std::map<std::string, std::string> read_spider_schemas(const std::string& path, BadRecordPolicy& bad) {
  std::map<std::string, std::string> schemas;
  read_json_array(path, bad, [&](const nlohmann::json& db, int64_t) {
    schemas[required_string(db, "db_id")] = render_spider_schema(db);
  });
  return schemas;
}

Format spider_tables_format() {
  Format f;
  f.name = "spider_tables";
  f.description = "Spider's tables.json (database schemas): read by the spider format, not converted itself";
  f.kind = OutputKind::companion;
  f.sniff = [](const FileSample& s) { return has_fields(s, {"db_id", "table_names_original", "column_names_original"}); };
  f.convert = [](const ConvertInput& in, BadRecordPolicy& bad) {
    read_spider_schemas(in.path, bad);  // validates; the schemas are used by the spider conversion
    return Converted{};
  };
  return f;
}

}  // namespace mf
