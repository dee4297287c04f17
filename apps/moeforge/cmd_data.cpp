// moeforge data: turns public dataset files into one mixed, split instruction dataset.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "data_commands.h"

namespace mf::cli {
namespace {

const char* kDataUsage =
    "usage: moeforge data <subcommand> [options]\n"
    "\n"
    "Prepares training data: dataset files -> unified instruction JSONL with domains -> one mix.\n"
    "\n"
    "subcommands:\n"
    "  convert    convert dataset files (Alpaca, GPTeacher, Dolly, GSM8K, DailyDialog, Spider, hh-rlhf,\n"
    "             WikiText, plain text) to unified JSONL, one file per input, with domains assigned\n"
    "  mix        deduplicate, cap/weight per source, shuffle and split unified files into\n"
    "             train/validation/test (split per domain)\n"
    "  stats      record counts (source x domain) and lengths of unified JSONL files\n"
    "\n"
    "Run 'moeforge data <subcommand> --help' for its options; docs/data.md walks through the whole pipeline.\n";

}  // namespace

std::map<std::string, std::string> parse_assignments(const std::string& option, const std::vector<std::string>& pairs) {
  std::map<std::string, std::string> out;
  for (const std::string& p : pairs) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == p.size())
      throw UsageError(cat("--", option, " wants SOURCE=VALUE, got '", p, "'"));
    if (!out.emplace(p.substr(0, eq), p.substr(eq + 1)).second)
      throw UsageError(cat("--", option, " names '", p.substr(0, eq), "' twice"));
  }
  return out;
}

int run_data(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << kDataUsage;
    return 2;
  }
  const std::string& sub = args.front();
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "--help" || sub == "-h" || sub == "help") {
    std::cout << kDataUsage;
    return 0;
  }
  if (sub == "convert") return run_data_convert(rest);
  if (sub == "mix") return run_data_mix(rest);
  if (sub == "stats") return run_data_stats(rest);
  throw UsageError(cat("unknown subcommand '", sub, "' (convert, mix, stats; see moeforge data --help)"));
}

}  // namespace mf::cli
