// Spider's database schemas (tables.json): read, and rendered as CREATE TABLE lines that a model
// can read as the input of a text-to-SQL record.
#pragma once
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "data/records.h"

namespace mf {

// One line per table, columns with their Spider types, keys inline:
//   CREATE TABLE concert (concert_ID number PRIMARY KEY, Stadium_ID text REFERENCES stadium(Stadium_ID));
// A composite primary key is a trailing "PRIMARY KEY (a, b)"; names that are not plain
// identifiers are double-quoted. Throws RecordError for an inconsistent schema.
std::string render_spider_schema(const nlohmann::json& db);

// db_id -> rendered schema for every schema of a tables.json file.
std::map<std::string, std::string> read_spider_schemas(const std::string& path, BadRecordPolicy& bad);

}  // namespace mf
