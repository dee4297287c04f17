// moeforge compare RUN_DIR...: finished training runs side by side.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "core/mapped_file.h"
#include "train/run_compare.h"

namespace mf::cli {

int run_compare(const std::vector<std::string>& args_in) {
  const std::vector<std::string>& args = args_in;
  std::vector<std::string> dirs;
  bool markdown = false;
  std::string output;
  ArgParser p("moeforge compare RUN_DIR... [--markdown] [-o FILE]",
              "Puts finished training runs side by side: routing, steps, final and best validation loss, tokens/s, "
              "minutes, parameters, and (for MoE runs, over the last quarter of the logged steps) expert load "
              "coefficient of variation, drop rate and router entropy.");
  p.positionals("RUN_DIR", "output directories of finished `moeforge train` runs", &dirs, true);
  p.flag("markdown", "print a Markdown table", &markdown);
  p.option("output", 'o', "FILE", "also write the table to FILE", &output);
  p.example("moeforge compare runs/switch runs/topk2 --markdown", "two finished runs side by side as a Markdown table");
  if (!parse_or_usage(p, args)) return 0;
  std::vector<RunRow> rows;
  for (const std::string& d : dirs) rows.push_back(read_run(d));
  const std::string table = format_runs_table(rows, markdown);
  std::cout << table;
  if (!output.empty()) write_file_atomic(output, table.data(), table.size());
  return 0;
}

}  // namespace mf::cli
