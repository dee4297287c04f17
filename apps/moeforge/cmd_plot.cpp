// moeforge plot RUN_DIR...: runs' curves and expert load as one HTML page (several runs overlay).
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "core/mapped_file.h"
#include "train/report.h"

namespace mf::cli {

int run_plot(const std::vector<std::string>& args) {
  std::vector<std::string> run_dirs;
  std::string output;
  ArgParser p("moeforge plot RUN_DIR... [-o FILE.html]",
              "Renders training runs' metrics.jsonl (loss and validation loss, learning rate, gradient norm, each aux "
              "loss, throughput, routing statistics, per-layer expert load) to one self-contained HTML page. Several "
              "runs are drawn on the same charts, one colour per run.\n\n"
              "examples:\n"
              "  moeforge plot runs/tiny                       # writes runs/tiny/report.html\n"
              "  moeforge plot runs/noisy runs/switch -o cmp.html");
  p.positionals("RUN_DIR", "output directories of `moeforge train` runs (finished or still running)", &run_dirs, true);
  p.option("output", 'o', "FILE", "where to write the page (default RUN_DIR/report.html for one run, "
                                  "report.html in the current directory for several)", &output);
  p.example("moeforge plot runs/switch runs/topk2 -o compare.html", "both runs' curves and routing on one page");
  if (!parse_or_usage(p, args)) return 0;
  if (output.empty())
    output = run_dirs.size() == 1 ? (std::filesystem::path(run_dirs[0]) / "report.html").string() : "report.html";
  const std::string html = render_run_report(read_report_runs(run_dirs));
  write_file_atomic(output, html.data(), html.size());
  std::cout << output << "\n";
  return 0;
}

}  // namespace mf::cli
