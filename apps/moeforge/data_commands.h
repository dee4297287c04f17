// The `moeforge data` subcommands (convert, mix, stats) and the argument helpers they share.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mf::cli {

int run_data_convert(const std::vector<std::string>& args);
int run_data_mix(const std::vector<std::string>& args);
int run_data_stats(const std::vector<std::string>& args);

// "name=value" pairs of a repeatable option (--cap alpaca=100) -> name -> value text;
// UsageError naming the option for a malformed pair or a name given twice.
std::map<std::string, std::string> parse_assignments(const std::string& option, const std::vector<std::string>& pairs);

}  // namespace mf::cli
