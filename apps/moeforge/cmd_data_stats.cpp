// moeforge data stats FILE.jsonl...: record counts (source x domain) and character lengths.
#include <iostream>

#include "common.h"
#include "data/dataset_stats.h"
#include "data_commands.h"

namespace mf::cli {

int run_data_stats(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  ArgParser p("moeforge data stats FILE.jsonl...",
              "Counts the records of unified instruction JSONL files per source and domain, and reports prompt "
              "(instruction + input) and output lengths in characters per domain (mean, median, 95th percentile, "
              "max) and the mean number of history turns. {\"text\"} files get document counts and lengths.");
  p.positionals("FILE.jsonl", "unified instruction (or {\"text\"}) JSONL files", &inputs, true);
  p.example("moeforge data stats data/mix/train.jsonl", "records per source and domain, and their lengths");
  if (!parse_or_usage(p, args)) return 0;
  std::cout << render_dataset_stats(dataset_stats(inputs));
  return 0;
}

}  // namespace mf::cli
