// One function per subcommand; each gets the arguments after its name and returns the
// process exit status.
#pragma once
#include <string>
#include <vector>

namespace mf::cli {

int run_info(const std::vector<std::string>& args);
int run_generate(const std::vector<std::string>& args);
int run_chat(const std::vector<std::string>& args);
int run_train(const std::vector<std::string>& args);
int run_plot(const std::vector<std::string>& args);
int run_compare(const std::vector<std::string>& args);
int run_data(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int run_fuse(const std::vector<std::string>& args);
int run_upcycle(const std::vector<std::string>& args);
int run_inspect(const std::vector<std::string>& args);
int run_convert(const std::vector<std::string>& args);
int run_perplexity(const std::vector<std::string>& args);
int run_serve(const std::vector<std::string>& args);

}  // namespace mf::cli
