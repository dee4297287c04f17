// Mixing unified instruction files into one dataset: duplicates removed, per-source caps and
// ratios, a seeded shuffle and a train/validation/test split made per domain so that every
// domain is represented in every split. The same inputs and seed give byte-identical files.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "data/count_table.h"
#include "data/sft_record.h"

namespace mf {

struct MixOptions {
  uint64_t seed = 0;
  // source -> weight. Below 1 keeps that share of the source's records (a seeded subset); above
  // 1 repeats its records in the train split only, so validation and test hold each record once.
  std::map<std::string, double> ratio;
  std::map<std::string, int64_t> cap;               // source -> most records kept (seeded subset)
  std::array<double, 3> split{0.9, 0.05, 0.05};     // train, validation, test; sums to 1
};

struct MixResult {
  std::vector<SftRecord> train, validation, test;
  int64_t duplicates = 0;                 // records dropped as repeats of an earlier one
  std::map<std::string, int64_t> unique;  // source -> records after removing duplicates
  std::map<std::string, int64_t> kept;    // source -> records after caps and ratios below 1
};

// Parses "0.9,0.05,0.05"; mf::Error unless three non-negative numbers summing to 1.
std::array<double, 3> parse_split(const std::string& text);

// The key two records share when they repeat each other: instruction, input and output (and,
// for a whole conversation, every history turn) with ASCII letters lower-cased and whitespace
// runs collapsed.
std::string dedupe_key(const SftRecord& r);

// `records` in input order (the first of several duplicates is kept). Every record needs a
// domain and a source; a ratio or cap naming a source that has no records is an error.
MixResult mix_records(std::vector<SftRecord> records, const MixOptions& options);

// Domain x split counts of a mix.
CountTable mix_count_table(const MixResult& mix);

// The `moeforge data mix` run: reads unified JSONL files (a pretraining {"text"} file is skipped
// with a note), mixes, writes out_dir/{train,validation,test}.jsonl and out_dir/counts.json.
// Records without a domain are bad records (file:line), skipped only with skip_bad.
MixResult mix_files(const std::vector<std::string>& paths, const std::string& out_dir, const MixOptions& options,
                    bool skip_bad, std::ostream& progress);

}  // namespace mf
