// `moeforge data convert` as a library call: every input file through its format (detected or
// forced), domains assigned by the domain map, one DIR/<stem>.jsonl per file and DIR/summary.json.
#pragma once
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "data/convert/formats.h"
#include "data/count_table.h"
#include "data/domain_map.h"

namespace mf {

struct ConvertOptions {
  std::string format;      // "" = detect each file's format
  std::string tables;      // Spider's schema file; "" = a spider_tables input, or spider_tables.json beside
  bool skip_bad = false;   // count malformed records instead of stopping at the first
  std::string source;      // the domain-map entry for every input (--source); "" = by stem, then format
};

struct ConvertedFile {
  std::string path, source, format;
  OutputKind kind = OutputKind::instructions;
  std::string domain_entry;                // instructions: the map's entry that assigned the domains
  std::string domain_entry_reason;         // why that entry: "--source", "file stem" or "detected format"
  std::string output;                      // the written JSONL ("" for a companion file)
  int64_t written = 0;                     // records or documents
  int64_t characters = 0;                  // documents only: their total length
  std::map<std::string, int64_t> domains;  // instruction records per domain
  int64_t dropped = 0;                     // see Converted::dropped
  int64_t skipped_bad = 0;
  std::vector<std::string> bad_examples;   // the first few "file:line: reason"
};

// `domains` may be null when no input holds instruction records. Each instruction file's records
// take their domains from one entry of the map (choose_domain_entry: --source, else the file
// stem, else the detected format). Two inputs with the same stem, a file no entry applies to and
// bad records (unless skipping) are errors naming the file.
// One progress line per file goes to `progress`.
std::vector<ConvertedFile> convert_files(const std::vector<std::string>& paths, const std::string& out_dir,
                                         const ConvertOptions& options, const DomainMap* domains,
                                         std::ostream& progress);

// Source x domain counts of the instruction outputs (domain columns in the map's order).
CountTable convert_count_table(const std::vector<ConvertedFile>& files, const DomainMap* domains);
// Everything convert_files did, as written to DIR/summary.json.
nlohmann::json convert_summary_json(const std::vector<ConvertedFile>& files, const DomainMap* domains);

}  // namespace mf
