// The `moeforge data` subcommands (convert, mix, stats) and the argument helpers they share.
#pragma once
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mf::cli {

int run_data_convert(const std::vector<std::string>& args);
int run_data_mix(const std::vector<std::string>& args);
int run_data_stats(const std::vector<std::string>& args);

// Splits arguments into positional file names and options for ArgParser. Every "-x"/"--name"
// takes the next argument as its value unless it is listed in `flags` or written --name=value;
// everything after "--" is positional.
struct SplitArgs {
  std::vector<std::string> positional, options;
};
SplitArgs split_positionals(const std::vector<std::string>& args, std::initializer_list<const char*> flags);

// "name=value" pairs of a repeatable option (--cap alpaca=100) -> name -> value text;
// UsageError naming the option for a malformed pair or a name given twice.
std::map<std::string, std::string> parse_assignments(const std::string& option, const std::vector<std::string>& pairs);

}  // namespace mf::cli
