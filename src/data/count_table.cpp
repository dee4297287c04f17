#include "data/count_table.h"

#include <algorithm>

namespace mf {

CountTable::CountTable(std::string corner, std::vector<std::string> columns)
    : corner_(std::move(corner)), columns_(std::move(columns)) {}

void CountTable::add(const std::string& row, const std::string& column, int64_t n) {
  if (std::find(rows_.begin(), rows_.end(), row) == rows_.end()) rows_.push_back(row);
  if (std::find(columns_.begin(), columns_.end(), column) == columns_.end()) columns_.push_back(column);
  cells_[{row, column}] += n;
}

int64_t CountTable::at(const std::string& row, const std::string& column) const {
  auto it = cells_.find({row, column});
  return it == cells_.end() ? 0 : it->second;
}

int64_t CountTable::row_total(const std::string& row) const {
  int64_t n = 0;
  for (const std::string& c : columns_) n += at(row, c);
  return n;
}

int64_t CountTable::column_total(const std::string& column) const {
  int64_t n = 0;
  for (const std::string& r : rows_) n += at(r, column);
  return n;
}

int64_t CountTable::total() const {
  int64_t n = 0;
  for (const auto& [key, v] : cells_) n += v;
  return n;
}

std::string CountTable::render() const {
  std::vector<std::vector<std::string>> grid;
  std::vector<std::string> header{corner_};
  header.insert(header.end(), columns_.begin(), columns_.end());
  header.push_back("total");
  grid.push_back(header);
  for (const std::string& r : rows_) {
    std::vector<std::string> line{r};
    for (const std::string& c : columns_) line.push_back(std::to_string(at(r, c)));
    line.push_back(std::to_string(row_total(r)));
    grid.push_back(std::move(line));
  }
  std::vector<std::string> totals{"total"};
  for (const std::string& c : columns_) totals.push_back(std::to_string(column_total(c)));
  totals.push_back(std::to_string(total()));
  grid.push_back(std::move(totals));

  std::vector<size_t> width(header.size(), 0);
  for (const auto& line : grid)
    for (size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  std::string out;
  for (const auto& line : grid) {
    for (size_t i = 0; i < line.size(); ++i) {
      const std::string pad(width[i] - line[i].size(), ' ');
      out += i == 0 ? line[i] + pad : "  " + pad + line[i];  // names left, numbers right
    }
    out += "\n";
  }
  return out;
}

nlohmann::json CountTable::to_json() const {
  nlohmann::json j;
  j["columns"] = columns_;
  j["row_names"] = rows_;  // the "rows" object below is keyed alphabetically
  nlohmann::json rows = nlohmann::json::object();
  for (const std::string& r : rows_) {
    nlohmann::json row = nlohmann::json::object();
    for (const std::string& c : columns_) row[c] = at(r, c);
    row["total"] = row_total(r);
    rows[r] = std::move(row);
  }
  j["rows"] = std::move(rows);
  nlohmann::json totals = nlohmann::json::object();
  for (const std::string& c : columns_) totals[c] = column_total(c);
  totals["total"] = total();
  j["total"] = std::move(totals);
  return j;
}

}  // namespace mf
