// `moeforge data stats`: what a unified JSONL file (or a {"text"} pretraining file) holds,
// counted in records and characters (no tokenizer needed).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/count_table.h"

namespace mf {

// Summary numbers of a list of lengths (characters).
struct LengthStats {
  int64_t count = 0;
  double mean = 0;
  int64_t median = 0, p95 = 0, max = 0;
};
LengthStats length_stats(std::vector<int64_t> lengths);

struct DatasetStats {
  CountTable counts{"source"};                    // instruction records: source x domain
  std::map<std::string, LengthStats> prompt;      // domain -> instruction + input lengths
  std::map<std::string, LengthStats> answer;      // domain -> output lengths
  std::map<std::string, double> history_turns;    // domain -> mean earlier turns per record
  std::map<std::string, LengthStats> documents;   // {"text"} file -> document lengths
};

// Reads every file strictly (a bad line is an error naming file:line).
DatasetStats dataset_stats(const std::vector<std::string>& paths);
// The count table, then one line of length figures per domain and per document file.
std::string render_dataset_stats(const DatasetStats& s);

}  // namespace mf
