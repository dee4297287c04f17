// moeforge's training and prefill kernels (oneDNN's GEMMs among them) open and close many OpenMP
// parallel regions per step. Between two of them libgomp's threads busy-wait (300,000 pause
// instructions by default, milliseconds) before they sleep. On an idle machine that saves a
// wake-up; on a machine where other processes want the cores, a spinning thread burns the time
// slice that the thread it waits for needed: decode, when it still ran on OpenMP, fell from ~30 to
// under 1 token/s (issue 22). Decode loops now run on core/work_pool, which has its own policy.
// bench/run_contention_bench.py measures the choice (docs/benchmarks.md, "OpenMP wait policy").
//
// libgomp reads its environment once, in its initializer, before main() and before any
// constructor of this program; an executable's .preinit_array runs earlier but glibc resets the
// environment after it. So the variable is set and the program executed again, once: the second
// run finds it set and goes on.
#include "openmp_policy.h"

#include <cstdlib>

#include <unistd.h>

namespace mf::cli {

namespace {

// What the runtime is told: spin 3,000 pauses (a few microseconds, enough to bridge the gap
// between two regions of one decode step), then sleep. Measured with
// bench/run_contention_bench.py on this 2-core machine (docs/benchmarks.md): sleeping at once
// (passive) halved idle decode and training; libgomp's 300,000 collapsed both under two busy
// processes; 3,000 kept the idle speed and tripled contended decode.
constexpr const char* kPolicyVariable = "GOMP_SPINCOUNT";
constexpr const char* kPolicyValue = "3000";

}  // namespace

bool command_runs_models(const std::string& command) {
  for (const char* c : {"generate", "chat", "serve", "train", "eval", "perplexity", "inspect", "fuse"})
    if (command == c) return true;
  return false;
}

void apply_openmp_wait_policy(char** argv) {
  // The user's choice (or that of an earlier execution of this function) wins.
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  // The binary's real path, not /proc/self/exe: the process name (ps, top, pgrep) comes from
  // the executed file's name.
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return;
  self[n] = '\0';
  if (setenv(kPolicyVariable, kPolicyValue, /*overwrite=*/0) != 0) return;
  execv(self, argv);
  // Only reached when the exec failed (no /proc, say): this run keeps the runtime's default. The
  // variable stays set, so processes this one starts see a consistent choice.
}

}  // namespace mf::cli
