// How OpenMP's idle threads wait, chosen for the machines moeforge runs on: laptops and shared
// servers that are never idle (see openmp_policy.cpp).
#pragma once
#include <string>

namespace mf::cli {

// The first call of main(): when the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT,
// sets moeforge's spin count (GOMP_SPINCOUNT) and re-executes this program so the OpenMP runtime reads it (it
// reads its environment once, before main). Returns when no re-execution is needed, or when it
// failed (the run then goes on with the runtime's default).
void apply_openmp_wait_policy(char** argv);

// Whether `command` runs a model's kernels (generate, chat, serve, train, eval, perplexity,
// inspect): only those pay for the re-execution.
bool command_runs_models(const std::string& command);

}  // namespace mf::cli
