// Running the built moeforge binary ($MOEFORGE_BIN) from the end-to-end tests: arguments,
// standard input, exit code and both output streams.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace mf::test {
namespace fs = std::filesystem;

struct RunResult {
  int rc = -1;
  std::string out, err;
};

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out.append("'\\''");
    else out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

inline std::string binary() {
  const char* b = std::getenv("MOEFORGE_BIN");
  return b ? b : "";
}

// Runs a shell command line with `stdin_text` on its standard input, capturing both outputs.
inline RunResult run_shell(const std::string& command, const std::string& stdin_text = "") {
  fs::path dir = fs::temp_directory_path() / ("moeforge_e2e_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "in") << stdin_text;
  std::string cmd = command;
  for (const auto& [redirect, file] : {std::pair{" <", "in"}, {" >", "out"}, {" 2>", "err"}}) {
    cmd.append(redirect);
    cmd.append(quote((dir / file).string()));
  }
  int status = std::system(cmd.c_str());
  RunResult r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  fs::remove_all(dir);
  return r;
}

// Runs the moeforge CLI with `args`.
inline RunResult run(const std::vector<std::string>& args, const std::string& stdin_text = "") {
  std::string cmd = quote(binary());
  for (const auto& a : args) {
    cmd.push_back(' ');
    cmd.append(quote(a));
  }
  return run_shell(cmd, stdin_text);
}

inline bool has(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

}  // namespace mf::test
