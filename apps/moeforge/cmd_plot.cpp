// moeforge plot RUN_DIR: the run's curves and expert load as one HTML page.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "core/mapped_file.h"
#include "train/report.h"

namespace mf::cli {

int run_plot(const std::vector<std::string>& args_in) {
  std::vector<std::string> args = args_in;
  std::string run_dir, output;
  if (!args.empty() && !args.front().empty() && args.front()[0] != '-') {
    run_dir = args.front();
    args.erase(args.begin());
  }
  ArgParser p("moeforge plot RUN_DIR [-o FILE.html]",
              "Renders a training run's metrics.jsonl (loss, validation loss, learning rate, gradient norm, aux "
              "losses, per-layer expert load) to one self-contained HTML page.");
  p.option("output", 'o', "FILE", "where to write the page (default RUN_DIR/report.html)", &output);
  if (!parse_or_usage(p, args)) return 0;
  if (run_dir.empty()) throw UsageError("a run directory is required: moeforge plot RUN_DIR");
  const std::filesystem::path dir(run_dir);
  if (output.empty()) output = (dir / "report.html").string();
  const std::string html = render_run_report((dir / "metrics.jsonl").string(), dir.filename().string());
  write_file_atomic(output, html.data(), html.size());
  std::cout << output << "\n";
  return 0;
}

}  // namespace mf::cli
