// What the dist tests share: launching the CLI under mpirun (as root in CI, more ranks than
// cores), reading a run's metrics, comparing two runs' loss curves and exported weights, and the
// tiny dense and MoE recipes they train (20 steps of 4 micro-batches of 2 windows, the data made
// by the test).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/types.h>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "io/safetensors.h"

namespace mf::test {

inline std::string mpirun() {
  const char* m = std::getenv("MOEFORGE_MPIEXEC");
  if (m && *m) return m;
#ifdef MOEFORGE_TEST_MPIEXEC
  if (*MOEFORGE_TEST_MPIEXEC) return MOEFORGE_TEST_MPIEXEC;  // the one CMake found with MPI
#endif
  return "mpirun";
}

// The mpirun command line for `ranks` ranks of moeforge (as root in CI: OpenMPI refuses root
// without --allow-run-as-root; --oversubscribe: more ranks than this machine's cores).
inline std::string mpirun_prefix(int ranks, const std::string& tag = "") {
  // Shared memory without the single-copy (CMA) path: containers often forbid the cross-process
  // reads it uses, and OpenMPI then floods stderr with "Read -1, expected N, errno = 1" (Open MPI
  // issue 4948); the copy through the shared segment works everywhere.
  // ctest runs other tests (and other jobs) beside this one: ranks neither pinned to one core nor
  // spinning while they wait, so two jobs on the same cores still make progress.
  std::string cmd = quote(mpirun()) + " --oversubscribe --allow-run-as-root --mca btl_vader_single_copy_mechanism none" +
                    " --bind-to none --mca mpi_yield_when_idle 1 -np " + std::to_string(ranks) +
                    " -x OMP_NUM_THREADS=1";
  if (!tag.empty()) cmd += " -x MOEFORGE_TEST_TAG=" + tag;
  return cmd + " " + quote(binary());
}

inline std::string join_args(const std::vector<std::string>& args) {
  std::string s;
  for (const std::string& a : args) s += " " + quote(a);
  return s;
}

// One training run of the CLI: ranks = 0 is the single process without mpirun.
inline RunResult train(int ranks, const std::vector<std::string>& args) {
  if (ranks == 0) return run_shell("OMP_NUM_THREADS=1 " + quote(binary()) + " train" + join_args(args));
  // A job that hangs (a collective some rank never reaches) fails the test in minutes, not hours.
  return run_shell("timeout --kill-after=10 240 " + mpirun_prefix(ranks) + " train" + join_args(args));
}

inline std::vector<nlohmann::json> metrics(const fs::path& run_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line))
    if (auto j = nlohmann::json::parse(line, nullptr, false); j.is_object()) out.push_back(j);  // skips a line being written
  return out;
}

// The largest relative difference between two runs' per-step training losses.
inline double max_relative_loss_difference(const fs::path& a, const fs::path& b, size_t steps) {
  const auto ma = metrics(a), mb = metrics(b);
  EXPECT_EQ(ma.size(), steps);
  EXPECT_EQ(mb.size(), steps);
  double worst = 0;
  for (size_t i = 0; i < std::min({ma.size(), mb.size(), steps}); ++i) {
    EXPECT_EQ(ma[i]["step"], mb[i]["step"]);
    const double la = ma[i]["loss"], lb = mb[i]["loss"];
    worst = std::max(worst, std::abs(la - lb) / std::max(std::abs(la), 1e-12));
  }
  return worst;
}

// The largest difference between two exported models' tensors, relative to each tensor's largest
// magnitude; every tensor must be in both.
inline double max_relative_weight_difference(const fs::path& a, const fs::path& b) {
  const mf::SafetensorsFile fa = mf::SafetensorsFile::open((a / "model" / "model.safetensors").string());
  const mf::SafetensorsFile fb = mf::SafetensorsFile::open((b / "model" / "model.safetensors").string());
  EXPECT_EQ(fa.tensors.size(), fb.tensors.size());
  double worst = 0;
  for (const auto& [name, ta] : fa.tensors) {
    auto it = fb.tensors.find(name);
    if (it == fb.tensors.end()) {
      ADD_FAILURE() << name << " missing";
      continue;
    }
    const mf::Tensor x = ta.to_f32(), y = it->second.to_f32();
    EXPECT_EQ(x.numel(), y.numel()) << name;
    double scale = 1e-12, diff = 0;
    for (int64_t i = 0; i < std::min(x.numel(), y.numel()); ++i) {
      scale = std::max(scale, double(std::abs(x.data<float>()[i])));
      diff = std::max(diff, double(std::abs(x.data<float>()[i] - y.data<float>()[i])));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

// A distributed run's losses and exported weights against one process's, within 1e-5
// relative, with the measured differences printed under `what`.
inline void expect_matches_one_process(const fs::path& one, const fs::path& many, size_t steps, const std::string& what) {
  const double loss = max_relative_loss_difference(one, many, steps);
  const double weights = max_relative_weight_difference(one, many);
  std::printf("[measured] %s vs 1 process: loss %.3g, weights %.3g\n", what.c_str(), loss, weights);
  EXPECT_LE(loss, 1e-5) << what;
  EXPECT_LE(weights, 1e-5) << what;
}

// The pid of the rank of the job tagged `tag` (its environment says both), or 0.
inline pid_t find_rank(const std::string& tag, int rank) {
  const std::string want_tag = "MOEFORGE_TEST_TAG=" + tag, want_rank = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string env = slurp(entry.path() / "environ");
    bool tagged = false, ranked = false;
    for (size_t at = 0; at < env.size();) {
      const size_t end = env.find('\0', at);
      const std::string var = env.substr(at, end == std::string::npos ? std::string::npos : end - at);
      tagged |= var == want_tag;
      ranked |= var == want_rank;
      if (end == std::string::npos) break;
      at = end + 1;
    }
    // The program as started (argv[0]).
    const std::string cmdline = slurp(entry.path() / "cmdline");
    const std::string program = cmdline.substr(0, cmdline.find('\0'));
    const bool is_moeforge = program.size() >= 8 && program.compare(program.size() - 8, 8, "moeforge") == 0;
    if (tagged && ranked && is_moeforge) return pid_t(std::stoi(name));
  }
  return 0;
}

inline bool same_bytes(const fs::path& a, const fs::path& b) { return slurp(a) == slurp(b); }

// The text the recipes train on, written into dir.
inline void write_corpus(const fs::path& dir) {
  std::ofstream text(dir / "corpus.txt");
  for (int i = 0; i < 300; ++i) text << "to be or not to be, that is the question. " << (i % 7) << "\n";
}

// 20 steps, a global batch of 4 micro-batches of 2 windows; min_lr_ratio 1 keeps the rate
// constant after warmup, so a run cut short by --max-steps is the start of the full one.
inline fs::path write_recipe(const fs::path& dir, const std::string& name, const std::string& model_config) {
  const fs::path p = dir / (name + ".yaml");
  std::ofstream(p) << "model:\n  init: scratch\n  seed: 3\n  config: " << model_config << "\n"
                   << "tokenizer: char\n"
                      "data: {train: corpus.txt, valid_fraction: 0.1}\n"
                      "train: {steps: 20, batch: 2, grad_accum: 4, seq_len: 32, lr: 3.0e-3, warmup: 3,\n"
                      "        min_lr_ratio: 1.0, eval_every: 10, checkpoint_every: 10, eval_windows: 6,\n"
                      "        balance_bias_rate: "
                   << (model_config.find("mixtral") != std::string::npos ? "0.01" : "0") << "}\n"
                   << "output: " << (dir / "unused").string() << "\n";
  return p;
}

inline fs::path dense_recipe(const fs::path& dir) {
  return write_recipe(dir, "dense", "{model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, "
                                    "num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, "
                                    "tie_word_embeddings: true}");
}

// Balance loss and aux-loss-free selection bias: the routing statistics must be the whole job's.
inline fs::path moe_recipe(const fs::path& dir) {
  return write_recipe(dir, "moe", "{model_type: mixtral, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, "
                                  "num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4, "
                                  "num_experts_per_tok: 2, max_position_embeddings: 64, tie_word_embeddings: false, "
                                  "router_selection_bias: true}");
}

}  // namespace mf::test
