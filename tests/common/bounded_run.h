// Running the CLI on input that may make it misbehave: in a child process with an address-space
// cap (so a runaway allocation cannot take the test machine down), killed at a wall-clock limit
// (or when the caller's condition says so: fault drills), and reporting how it ended (exit
// status or signal), its time and its peak memory.
#pragma once
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <functional>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "cli_run.h"

namespace mf::test {

struct BoundedResult {
  bool exited = false;    // ended by exit(), not by a signal, the time limit or kill_when
  int rc = -1;            // exit status when exited
  int signal = 0;         // the signal that ended it otherwise
  bool timed_out = false;
  bool killed = false;    // by kill_when
  double seconds = 0;
  long max_rss_mib = 0;
  std::string out, err;
};

struct Bounds {
  double seconds = 30;           // killed past this
  long address_space_mib = 8192; // RLIMIT_AS of the child
  // Polled every millisecond while the child runs: SIGKILL it once this returns true.
  std::function<bool()> kill_when;
};

inline BoundedResult run_bounded(const std::vector<std::string>& args, const Bounds& bounds,
                                 const std::string& stdin_text = "") {
  const fs::path dir = fs::temp_directory_path() / ("moeforge_bounded_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "in") << stdin_text;
  const std::string bin = binary();
  std::vector<std::string> argv_store{bin};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string in = (dir / "in").string(), out = (dir / "out").string(), err = (dir / "err").string();

  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    const int fin = ::open(in.c_str(), O_RDONLY);
    const int fout = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int ferr = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fin < 0 || fout < 0 || ferr < 0) ::_exit(127);
    ::dup2(fin, 0);
    ::dup2(fout, 1);
    ::dup2(ferr, 2);
    const rlim_t cap = rlim_t(bounds.address_space_mib) << 20;
    const rlimit as{cap, cap};
    ::setrlimit(RLIMIT_AS, &as);
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  BoundedResult r;
  int status = 0;
  rusage usage{};
  for (;;) {
    const pid_t done = ::wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (!r.killed && !r.timed_out && bounds.kill_when && bounds.kill_when()) {
      r.killed = true;
      ::kill(pid, SIGKILL);
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > bounds.seconds && !r.timed_out) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.max_rss_mib = usage.ru_maxrss / 1024;  // Linux reports KiB
  r.exited = WIFEXITED(status) && !r.timed_out && !r.killed;
  if (WIFEXITED(status)) r.rc = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  fs::remove_all(dir);
  return r;
}

}  // namespace mf::test
