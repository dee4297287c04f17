// `mpirun -np N moeforge train --set dist.expert_parallel=E` against the single-process run of the
// same recipe (the reference): the tiny MoE of dist_run.h (4 experts, top-2, balance loss,
// aux-loss-free selection bias) trained 20 steps with its experts split over groups of E ranks
// (EP only: N = E = 2; DP x EP: N = 4, E = 2; EP = 4), with and without ZeRO-1, gives the
// single-process loss curve within 1e-5 relative per step and the same final weights within
// 1e-5; so do a router-only upcycled MoE (frozen experts, exchanged all the same), Switch routing
// (top-1, capacity, dropped tokens) and expert-choice routing. Checkpoints stay the
// single-process file: a run saved at N = 4, E = 2 resumes at N = 2 without expert parallelism
// and then at N = 2, E = 2 on the same curve, and a run stopped and resumed at the same world
// size equals its straight run bit for bit (with and without ZeRO-1). A rank pages in only the frozen, memory-mapped experts
// it holds. Layouts that cannot work are refused by name. Every rank runs one OpenMP thread, as
// does the reference.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "dist_run.h"

namespace {
using namespace mf::test;

struct Layout {
  int ranks = 2, experts_per_group = 2;
};

std::string name_of(const Layout& l) { return std::to_string(l.ranks) + "x" + std::to_string(l.experts_per_group); }

std::vector<std::string> ep_args(const Layout& l) {
  return {"--set", "dist.expert_parallel=" + std::to_string(l.experts_per_group)};
}

class ExpertParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    if (run_shell(quote(mpirun()) + " --version").rc != 0) GTEST_SKIP() << "no mpirun (" << mpirun() << ")";
    dir_ = fs::temp_directory_path() / ("moeforge_ep_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_corpus(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // The recipe in one process, then at each layout: the same losses and weights.
  void expect_same_training(const fs::path& recipe, const std::string& tag, const std::vector<Layout>& layouts,
                            const std::vector<std::string>& extra = {}) {
    const fs::path one = dir_ / (tag + "_1");
    auto r = train(0, {recipe.string(), "--quiet", "-o", one.string()});
    ASSERT_EQ(r.rc, 0) << r.err;
    for (const Layout& l : layouts) {
      const fs::path many = dir_ / (tag + "_" + name_of(l));
      std::vector<std::string> args = {recipe.string(), "-o", many.string()};
      for (const auto& list : {ep_args(l), extra}) args.insert(args.end(), list.begin(), list.end());
      r = train(l.ranks, args);
      ASSERT_EQ(r.rc, 0) << r.err;
      EXPECT_TRUE(has(r.err, "distributed: " + std::to_string(l.ranks) + " ranks")) << r.err;
      EXPECT_TRUE(has(r.err, "x expert parallel")) << r.err;
      // The layout says which experts each rank holds: 4 experts over groups of E.
      const int per = 4 / l.experts_per_group;
      for (int rank = 0; rank < l.ranks; ++rank) {
        const int first = (rank % l.experts_per_group) * per;
        const std::string held = per == 1 ? std::to_string(first) : std::to_string(first) + "-" + std::to_string(first + per - 1);
        EXPECT_TRUE(has(r.err, "  rank " + std::to_string(rank) + " on ")) << r.err;
        EXPECT_TRUE(has(r.err, "holds experts " + held + " of 4 in every MoE layer")) << r.err;
      }
      const double loss = max_relative_loss_difference(one, many, 20);
      const double weights = max_relative_weight_difference(one, many);
      std::printf("[measured] %s, %d ranks, expert_parallel %d%s vs 1 process: max relative loss difference per step "
                  "%.3g, max relative weight difference %.3g\n",
                  tag.c_str(), l.ranks, l.experts_per_group, extra.empty() ? "" : " (ZeRO-1)", loss, weights);
      EXPECT_LE(loss, 1e-5) << tag << " at " << name_of(l);
      EXPECT_LE(weights, 1e-5) << tag << " at " << name_of(l);
      const auto last = metrics(many).back();
      EXPECT_EQ(last["dist_ranks"], l.ranks);
      EXPECT_EQ(last["dist_buckets_in_backward"], last["dist_buckets"]);
      // Rows went to other ranks in every step (rank 0 sends some of its rows to its group).
      EXPECT_GT(last["ep_bytes_sent"].get<int64_t>(), 0);
      last_err_ = r.err;
    }
  }

  // The tiny MoE of dist_run.h with top-k experts and more routing keys.
  fs::path moe_with(const std::string& name, int top_k, const std::string& routing) {
    return write_recipe(dir_, name,
                        "{model_type: mixtral, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, "
                        "num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4, "
                        "num_experts_per_tok: " + std::to_string(top_k) +
                            ", max_position_embeddings: 64, tie_word_embeddings: false, router_selection_bias: true" +
                            routing + "}");
  }

  fs::path dir_;
  std::string last_err_;
};

const std::vector<Layout> kLayouts = {{2, 2}, {4, 2}, {4, 4}};

TEST_F(ExpertParallel, MoeTrainsAsOneProcessDoes) {
  expect_same_training(moe_recipe(dir_), "moe", kLayouts);
  if (HasFatalFailure()) return;
  // The whole job's expert load is logged: 4 micro-batches x 64 tokens x top-2.
  for (const auto& layer : metrics(dir_ / "moe_4x4").back()["expert_load"]) {
    int64_t rows = 0;
    for (const auto& n : layer) rows += n.get<int64_t>();
    EXPECT_EQ(rows, 4 * 2 * 32 * 2);
  }
}

TEST_F(ExpertParallel, ShardedOptimizerTrainsAsOneProcessDoes) {
  expect_same_training(moe_recipe(dir_), "moe_zero1", kLayouts, {"--set", "dist.shard_optimizer=true"});
  if (HasFatalFailure()) return;
  // The ranks' blocks of AdamW moments add up to every trainable value of the model once (the
  // last layout: 4 ranks, each holding one expert of every layer).
  int64_t held = 0, total = 0;
  for (size_t at = last_err_.find("AdamW moments of "); at != std::string::npos;
       at = last_err_.find("AdamW moments of ", at + 1)) {
    long long h = 0, t = 0;
    ASSERT_EQ(std::sscanf(last_err_.c_str() + at, "AdamW moments of %lld of the %lld", &h, &t), 2);
    held += h;
    total = t;
    EXPECT_LE(h, t / 4 + 64) << "one rank holds more than its share";
  }
  EXPECT_GT(total, 0);
  EXPECT_EQ(held, total);
}

// Switch routing (top-1, capacity factor 1: tokens dropped), expert-choice routing (each expert
// takes its top tokens of the micro-batch) and noisy top-k: routing is per micro-batch, on the
// rank that runs it, so exact under EP too.
TEST_F(ExpertParallel, SwitchExpertChoiceAndNoisyTopKRouteAsOneProcessDoes) {
  const fs::path switch_recipe =
      moe_with("switch", 1, ", router_policy: switch, capacity_factor: 1.0, eval_capacity_factor: 1.0, min_capacity: 1");
  expect_same_training(switch_recipe, "switch", {{2, 2}});
  if (HasFatalFailure()) return;
  const auto last = metrics(dir_ / "switch_2x2").back();
  double dropped = 0;
  for (const auto& d : last["drop_rate"]) dropped += d.get<double>();
  EXPECT_GT(dropped, 0) << "capacity 1.0 should drop some top-1 tokens";
  const fs::path choice_recipe = moe_with("choice", 2, ", router_policy: expert_choice, capacity_factor: 1.0");
  expect_same_training(choice_recipe, "choice", {{4, 2}});
  if (HasFatalFailure()) return;
  // Noisy top-k: each rank draws the noise of its own micro-batches, as one process does.
  expect_same_training(moe_with("noisy", 2, ", router_policy: noisy_topk"), "noisy", {{2, 2}});
}

// A MoE upcycled from a dense model whose routers alone train: the frozen experts are still
// split over the ranks (rows exchanged, input gradients sent back), only the routers are summed.
TEST_F(ExpertParallel, RouterOnlyFusedMoeTrainsAsOneProcessDoes) {
  const fs::path dense_run = dir_ / "dense_base";
  auto r = train(0, {dense_recipe(dir_).string(), "--quiet", "-o", dense_run.string(), "--max-steps", "5"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const fs::path fused = dir_ / "fused";
  r = run({"upcycle", "-m", (dense_run / "model").string(), "--experts", "4", "--noise", "0.05", "-o", fused.string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  const fs::path recipe = dir_ / "routers.yaml";
  std::ofstream(recipe) << "model: {init: " << fused.string() << "}\n"
                        << "tokenizer: model\n"
                           "data: {train: corpus.txt, valid_fraction: 0.1}\n"
                           "freeze: [experts, attention, embeddings, norm]\n"
                           "train: {steps: 20, batch: 2, grad_accum: 4, seq_len: 32, lr: 1.0e-2, warmup: 3,\n"
                           "        eval_every: 10, eval_windows: 6}\n"
                           "output: unused\n";
  expect_same_training(recipe, "routers", {{2, 2}, {4, 4}});
  if (HasFatalFailure()) return;
  // Two layers of a router [4 experts, hidden 32] are all that trains; no expert is trainable.
  EXPECT_TRUE(has(last_err_, "(256 trainable values, gradients summed over all 4 ranks)")) << last_err_;
  EXPECT_TRUE(has(last_err_, "(0 trainable expert values in all")) << last_err_;
}

// Saved at 4 ranks with experts over pairs, resumed at 2 ranks without expert parallelism, then
// at 2 ranks with it, ZeRO-1 in the last part: the single-process curve. At one world size, a
// run stopped and resumed equals the straight run bit for bit (losses, model, checkpoint), with
// and without ZeRO-1.
TEST_F(ExpertParallel, CheckpointsResumeAcrossLayouts) {
  const fs::path recipe = moe_recipe(dir_);
  const fs::path one = dir_ / "one", run_dir = dir_ / "moved";
  ASSERT_EQ(train(0, {recipe.string(), "--quiet", "-o", one.string()}).rc, 0);
  auto r = train(4, {recipe.string(), "--quiet", "-o", run_dir.string(), "--max-steps", "10", "--set",
                     "dist.expert_parallel=2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = train(2, {recipe.string(), "--quiet", "-o", run_dir.string(), "--max-steps", "15", "--resume"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = train(2, {recipe.string(), "--quiet", "-o", run_dir.string(), "--resume", "--set", "dist.expert_parallel=2",
                "--set", "dist.shard_optimizer=true"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const double loss = max_relative_loss_difference(one, run_dir, 20);
  const double weights = max_relative_weight_difference(one, run_dir);
  std::printf("[measured] moe saved at 4 ranks x expert_parallel 2, resumed at 2 ranks, then at 2 x 2 with ZeRO-1, "
              "vs 1 process: loss %.3g, weights %.3g\n", loss, weights);
  EXPECT_LE(loss, 1e-5);
  EXPECT_LE(weights, 1e-5);

  // At 4 ranks x 2, with and without ZeRO-1.
  for (const std::string zero1 : {"false", "true"}) {
    const fs::path straight = dir_ / ("straight_" + zero1), resumed = dir_ / ("resumed_" + zero1);
    const std::vector<std::string> layout = {"--set", "dist.expert_parallel=2", "--set", "dist.shard_optimizer=" + zero1};
    auto with_layout = [&](std::vector<std::string> args) {
      args.insert(args.end(), layout.begin(), layout.end());
      return args;
    };
    ASSERT_EQ(train(4, with_layout({recipe.string(), "--quiet", "-o", straight.string()})).rc, 0);
    r = train(4, with_layout({recipe.string(), "--quiet", "-o", resumed.string(), "--max-steps", "10"}));
    ASSERT_EQ(r.rc, 0) << r.err;
    r = train(4, with_layout({recipe.string(), "--quiet", "-o", resumed.string(), "--resume"}));
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto ms = metrics(straight), mr = metrics(resumed);
    ASSERT_EQ(ms.size(), 20u);
    ASSERT_EQ(mr.size(), 20u);
    for (size_t i = 10; i < 20; ++i)
      EXPECT_EQ(ms[i]["loss"].get<double>(), mr[i]["loss"].get<double>()) << "ZeRO-1 " << zero1 << ", step " << i + 1;
    EXPECT_TRUE(same_bytes(straight / "model" / "model.safetensors", resumed / "model" / "model.safetensors")) << zero1;
    EXPECT_TRUE(same_bytes(straight / "checkpoint.safetensors", resumed / "checkpoint.safetensors")) << zero1;
  }
}

// Resident kB of the mappings of `file` in process `pid` (/proc/PID/smaps): the pages of the file
// this process has touched.
int64_t mapped_rss_kb(pid_t pid, const std::string& file) {
  std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps");
  std::string line;
  bool in_file = false;
  int64_t kb = 0;
  while (std::getline(smaps, line)) {
    const size_t dash = line.find('-');
    if (dash != std::string::npos && line.find_first_not_of("0123456789abcdef") == dash) {
      in_file = line.size() >= file.size() && line.compare(line.size() - file.size(), file.size(), file) == 0;
    } else if (in_file && line.rfind("Rss:", 0) == 0) {
      kb += std::stoll(line.substr(4));
    }
  }
  return kb;
}

// The experts of a fused model are frozen and memory-mapped: a rank reads only the ones it holds,
// so only their pages of the file become resident in it (here 2 of 8 experts per layer on each of
// 4 ranks, against the whole file in one process).
TEST_F(ExpertParallel, RanksPageInOnlyTheExpertsTheyHold) {
  const fs::path dense = write_recipe(dir_, "dense_wide",
                                      "{model_type: llama, hidden_size: 128, intermediate_size: 512, "
                                      "num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, "
                                      "max_position_embeddings: 64, tie_word_embeddings: true}");
  const fs::path dense_run = dir_ / "dense_wide_run";
  auto r = train(0, {dense.string(), "--quiet", "-o", dense_run.string(), "--max-steps", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const fs::path fused = dir_ / "fused_wide";
  r = run({"upcycle", "-m", (dense_run / "model").string(), "--experts", "8", "-o", fused.string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  const fs::path recipe = dir_ / "routers_wide.yaml";
  std::ofstream(recipe) << "model: {init: " << fused.string() << "}\n"
                        << "tokenizer: model\n"
                           "data: {train: corpus.txt, valid_fraction: 0.1}\n"
                           "freeze: [experts, attention, embeddings, norm]\n"
                           "train: {steps: 100000, batch: 2, grad_accum: 4, seq_len: 32, eval_every: 0, eval_windows: 4}\n"
                           "output: unused\n";
  const std::string tag = "pages" + std::to_string(::getpid());
  const fs::path run_dir = dir_ / "paged";
  const std::string cmd = "exec " + mpirun_prefix(4, tag) + " train" +
                          join_args({recipe.string(), "--quiet", "-o", run_dir.string(), "--set",
                                     "dist.expert_parallel=4"}) +
                          " >/dev/null 2>" + quote((dir_ / "paged.err").string());
  const pid_t job = fork();
  ASSERT_GE(job, 0);
  if (job == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Some steps in (every layer's experts have run forward and backward), each rank's share.
  std::vector<pid_t> ranks(4, 0);
  const auto started = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - started < std::chrono::seconds(60)) {
    if (metrics(run_dir).size() >= 3) {
      for (int rank = 0; rank < 4; ++rank) ranks[size_t(rank)] = find_rank(tag, rank);
      if (std::count(ranks.begin(), ranks.end(), 0) == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string file = (fused / "model.safetensors").string();
  std::vector<int64_t> resident;
  for (pid_t pid : ranks) resident.push_back(pid ? mapped_rss_kb(pid, file) : -1);
  ::kill(job, SIGTERM);  // mpirun ends its ranks
  waitpid(job, nullptr, 0);
  for (int rank = 0; rank < 4; ++rank)
    if (const pid_t left = find_rank(tag, rank)) ::kill(left, SIGKILL);
  ASSERT_EQ(std::count(ranks.begin(), ranks.end(), 0), 0) << "the job did not start training: " << slurp(dir_ / "paged.err");
  const int64_t file_kb = int64_t(fs::file_size(file) / 1024);
  for (size_t rank = 0; rank < resident.size(); ++rank) {
    std::printf("[measured] rank %zu of 4 (expert_parallel 4, 2 of 8 experts): %lld of the fused file's %lld kB "
                "resident\n", rank, (long long)resident[rank], (long long)file_kb);
    EXPECT_GT(resident[rank], 0);
    // The experts are 97% of the file; a quarter of them and the shared tensors stay under 35%.
    EXPECT_LT(double(resident[rank]), 0.35 * double(file_kb)) << "rank " << rank;
  }
}

TEST_F(ExpertParallel, LayoutsThatCannotWorkAreRefused) {
  const fs::path recipe = moe_recipe(dir_);
  auto refused = [&](int ranks, std::vector<std::string> sets, const std::string& why) {
    std::vector<std::string> args = {recipe.string(), "--quiet", "-o", (dir_ / "refused").string()};
    args.insert(args.end(), sets.begin(), sets.end());
    const auto r = train(ranks, args);
    EXPECT_NE(r.rc, 0) << why;
    EXPECT_TRUE(has(r.err, why)) << r.err;
  };
  // In one process the key must be 1.
  refused(0, {"--set", "dist.expert_parallel=2"}, "'dist.expert_parallel' = 2 needs an MPI job");
  refused(0, {"--set", "dist.expert_parallel=0"}, "'dist.expert_parallel' = 0 must be >= 1");
  // 3 ranks do not form groups of 2.
  refused(3, {"--set", "dist.expert_parallel=2", "--set", "train.grad_accum=6"},
          "dist.expert_parallel = 2 must divide the 3 ranks");
  // 4 experts do not split over 3 ranks.
  refused(3, {"--set", "dist.expert_parallel=3", "--set", "train.grad_accum=6"},
          "layer 0 has 4 experts, which do not split evenly over the 3 ranks");
  // Ranks of a group run in lockstep: the same number of micro-batches each.
  refused(2, {"--set", "dist.expert_parallel=2", "--set", "train.grad_accum=3"},
          "train.grad_accum = 3 is not a multiple of the 2 ranks");
  // In one process expert_parallel 1 is the plain run.
  const auto r = train(0, {recipe.string(), "--quiet", "-o", (dir_ / "one").string(), "--max-steps", "2", "--set",
                           "dist.expert_parallel=1"});
  EXPECT_EQ(r.rc, 0) << r.err;
}

}  // namespace
