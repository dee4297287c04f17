// A table of counts (rows x columns, e.g. source x domain) with row and column totals, printed
// as aligned text for people and stored as JSON for scripts.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mf {

class CountTable {
 public:
  // `columns` fixes the column order; columns met later in add() are appended after them.
  CountTable(std::string corner, std::vector<std::string> columns = {});
  void add(const std::string& row, const std::string& column, int64_t n);

  int64_t at(const std::string& row, const std::string& column) const;
  int64_t row_total(const std::string& row) const;
  int64_t column_total(const std::string& column) const;
  int64_t total() const;
  const std::vector<std::string>& rows() const { return rows_; }
  const std::vector<std::string>& columns() const { return columns_; }

  // Rows in first-seen order, then a "total" row; a "total" column last.
  std::string render() const;
  // {"columns": [...], "row_names": [...], "rows": {row: {column: n, ..., "total": n}}, "total": {column: n, ..., "total": n}}
  nlohmann::json to_json() const;

 private:
  std::string corner_;
  std::vector<std::string> rows_, columns_;
  std::map<std::pair<std::string, std::string>, int64_t> cells_;
};

}  // namespace mf
