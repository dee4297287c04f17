// `mpirun -np N moeforge train` against the single-process run of the same recipe (the
// reference): a tiny dense model and a tiny MoE (balance loss, aux-loss-free selection bias, so the
// routing statistics must be the whole job's) trained 20 steps at N = 2 and N = 4, with and without
// ZeRO-1 (dist.shard_optimizer), give the single-process loss curve within 1e-5 relative per step
// and the same final weights within 1e-5; a run resumed at another world size (and with or without
// ZeRO-1) continues that curve, at the same world size bit for bit;
// a rank killed with kill -9 ends the job within seconds naming the rank; a recipe that leaves a
// rank without a micro-batch is refused; a router-only upcycled MoE sends only its routers. Every
// rank runs one OpenMP thread, as does the reference.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "dist_run.h"

namespace {
using namespace mf::test;

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    if (run_shell(quote(mpirun()) + " --version").rc != 0) GTEST_SKIP() << "no mpirun (" << mpirun() << ")";
    dir_ = fs::temp_directory_path() / ("moeforge_dist_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_corpus(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  fs::path dense() { return dense_recipe(dir_); }
  fs::path moe() { return moe_recipe(dir_); }

  // The recipe at 1 process and at 2 and 4 ranks: the same losses and weights.
  // extra: more arguments for the distributed runs (ZeRO-1).
  void expect_same_training(const fs::path& recipe, const std::string& tag, const std::vector<std::string>& extra = {}) {
    const fs::path one = dir_ / (tag + "_1");
    auto r = train(0, {recipe.string(), "--quiet", "-o", one.string()});
    ASSERT_EQ(r.rc, 0) << r.err;
    for (int ranks : {2, 4}) {
      const fs::path many = dir_ / (tag + "_" + std::to_string(ranks));
      std::vector<std::string> args = {recipe.string(), "-o", many.string()};
      args.insert(args.end(), extra.begin(), extra.end());
      r = train(ranks, args);
      ASSERT_EQ(r.rc, 0) << r.err;
      // Rank 0 alone prints the summary line and the layout, once.
      EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
      EXPECT_TRUE(has(r.err, "distributed: " + std::to_string(ranks) + " ranks")) << r.err;
      EXPECT_TRUE(has(r.err, "rank " + std::to_string(ranks - 1) + " on ")) << r.err;
      const double loss = max_relative_loss_difference(one, many, 20);
      const double weights = max_relative_weight_difference(one, many);
      std::printf("[measured] %s, %d ranks vs 1 process: max relative loss difference per step %.3g, "
                  "max relative weight difference %.3g\n", tag.c_str(), ranks, loss, weights);
      EXPECT_LE(loss, 1e-5) << tag << " at " << ranks << " ranks";
      EXPECT_LE(weights, 1e-5) << tag << " at " << ranks << " ranks";
      if (!extra.empty()) {
        // ZeRO-1: the ranks' blocks of AdamW moments add up to every trainable value once.
        EXPECT_TRUE(has(r.err, "with ZeRO-1")) << r.err;
        int64_t held = 0, total = 0;
        for (size_t at = r.err.find("AdamW moments of "); at != std::string::npos;
             at = r.err.find("AdamW moments of ", at + 1)) {
          long long h = 0, t = 0;
          ASSERT_EQ(std::sscanf(r.err.c_str() + at, "AdamW moments of %lld of the %lld", &h, &t), 2);
          held += h;
          total = t;
          EXPECT_LE(h, t / ranks + ranks * 8) << "one rank holds more than its share";
        }
        EXPECT_GT(total, 0);
        EXPECT_EQ(held, total);
      }
      const auto last = metrics(many).back();
      EXPECT_EQ(last["dist_ranks"], ranks);
      // Every bucket started while backward still ran (the CPU model reports each part done).
      EXPECT_GT(last["dist_buckets"].get<int>(), 1);
      EXPECT_EQ(last["dist_buckets_in_backward"], last["dist_buckets"]);
      EXPECT_TRUE(fs::exists(many / "checkpoint.safetensors") && fs::exists(many / "model" / "config.json"));
    }
  }

  fs::path dir_;
};

TEST_F(DataParallel, DenseModelTrainsAsOneProcessDoes) { expect_same_training(dense(), "dense"); }

TEST_F(DataParallel, MoeTrainsAsOneProcessDoes) {
  expect_same_training(moe(), "moe");
  // The whole job's expert load is logged, not rank 0's share: 4 micro-batches x 64 tokens x top-2.
  const auto last = metrics(dir_ / "moe_4").back();
  for (const auto& layer : last["expert_load"]) {
    int64_t rows = 0;
    for (const auto& n : layer) rows += n.get<int64_t>();
    EXPECT_EQ(rows, 4 * 2 * 32 * 2);
  }
}

TEST_F(DataParallel, ShardedOptimizerTrainsAsOneProcessDoes) {
  expect_same_training(dense(), "dense_zero1", {"--set", "dist.shard_optimizer=true"});
  expect_same_training(moe(), "moe_zero1", {"--set", "dist.shard_optimizer=true"});
}

// A checkpoint is the same file with or without ZeRO-1: saved sharded at 4 ranks, resumed whole at
// 2 ranks and then sharded in one process (where sharding changes nothing), on the one curve.
TEST_F(DataParallel, ShardedCheckpointsResumeAnywhere) {
  const fs::path recipe = moe();
  const fs::path one = dir_ / "one", run = dir_ / "sharded";
  ASSERT_EQ(train(0, {recipe.string(), "--quiet", "-o", one.string()}).rc, 0);
  auto r = train(4, {recipe.string(), "--quiet", "-o", run.string(), "--max-steps", "10", "--set",
                     "dist.shard_optimizer=true"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = train(2, {recipe.string(), "--quiet", "-o", run.string(), "--max-steps", "15", "--resume"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = train(0, {recipe.string(), "--quiet", "-o", run.string(), "--resume", "--set", "dist.shard_optimizer=true"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const double loss = max_relative_loss_difference(one, run, 20);
  const double weights = max_relative_weight_difference(one, run);
  std::printf("[measured] moe ZeRO-1 at 4 ranks, resumed at 2 and at 1, vs 1 process: loss %.3g, weights %.3g\n", loss,
              weights);
  EXPECT_LE(loss, 1e-5);
  EXPECT_LE(weights, 1e-5);
}

// A MoE fused from a dense model (moeforge upcycle) whose routers alone train: the frozen experts,
// attention, embeddings and norms send nothing; the routers train as in one process.
// ZeRO-1 stopped and resumed at the same world size equals its straight run bit for bit.
TEST_F(DataParallel, ShardedRunResumesBitForBit) {
  const fs::path recipe = moe();
  const fs::path straight = dir_ / "zero_straight", resumed = dir_ / "zero_resumed";
  const std::vector<std::string> shard = {"--set", "dist.shard_optimizer=true"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), shard.begin(), shard.end());
    return args;
  };
  ASSERT_EQ(train(2, with({recipe.string(), "--quiet", "-o", straight.string()})).rc, 0);
  auto r = train(2, with({recipe.string(), "--quiet", "-o", resumed.string(), "--max-steps", "10"}));
  ASSERT_EQ(r.rc, 0) << r.err;
  r = train(2, with({recipe.string(), "--quiet", "-o", resumed.string(), "--resume"}));
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto ms = metrics(straight), mr = metrics(resumed);
  ASSERT_EQ(ms.size(), 20u);
  ASSERT_EQ(mr.size(), 20u);
  for (size_t i = 10; i < 20; ++i) EXPECT_EQ(ms[i]["loss"].get<double>(), mr[i]["loss"].get<double>()) << i + 1;
  EXPECT_TRUE(same_bytes(straight / "model" / "model.safetensors", resumed / "model" / "model.safetensors"));
  EXPECT_TRUE(same_bytes(straight / "checkpoint.safetensors", resumed / "checkpoint.safetensors"));
}

TEST_F(DataParallel, RouterOnlyFusedMoeSendsOnlyTheRouters) {
  const fs::path dense_run = dir_ / "dense_base";
  auto r = train(0, {dense().string(), "--quiet", "-o", dense_run.string(), "--max-steps", "5"});
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
  const fs::path one = dir_ / "routers_1";
  r = train(0, {recipe.string(), "--quiet", "-o", one.string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  for (int ranks : {2, 4}) {
    const fs::path many = dir_ / ("routers_" + std::to_string(ranks));
    r = train(ranks, {recipe.string(), "-o", many.string()});
    ASSERT_EQ(r.rc, 0) << r.err;
    // Two layers of a router [4 experts, hidden 32]: the only values all-reduced.
    EXPECT_TRUE(has(r.err, "(256 trainable values; frozen tensors send nothing)")) << r.err;
    expect_matches_one_process(one, many, 20, "router-only upcycled MoE, " + std::to_string(ranks) + " ranks");
  }
  // Top-1: each rank's step is a forward that adds the routers' aux-loss gradients (no backward),
  // and the router gradients still reach the all-reduce through the same per-part callbacks.
  const fs::path fused1 = dir_ / "fused_top1";
  r = run({"upcycle", "-m", (dense_run / "model").string(), "--experts", "4", "--top-k", "1", "--noise", "0.05", "-o",
           fused1.string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  const fs::path one_top1 = dir_ / "routers_top1_1", two_top1 = dir_ / "routers_top1_2";
  r = train(0, {recipe.string(), "--quiet", "-o", one_top1.string(), "--set", "model.init=" + fused1.string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = train(2, {recipe.string(), "-o", two_top1.string(), "--set", "model.init=" + fused1.string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.err, "only top-1 routers train")) << r.err;
  expect_matches_one_process(one_top1, two_top1, 20, "router-only top-1 upcycled MoE, 2 ranks");
  // The balance loss (lb_coef 0.01 by default) moved the routers: the comparison compared training.
  const std::string router = "model.layers.0.block_sparse_moe.gate.weight";
  const mf::Tensor before = mf::SafetensorsFile::open((fused1 / "model.safetensors").string()).tensors.at(router).to_f32();
  const mf::Tensor after =
      mf::SafetensorsFile::open((one_top1 / "model" / "model.safetensors").string()).tensors.at(router).to_f32();
  ASSERT_EQ(before.numel(), after.numel());
  double moved = 0;
  for (int64_t i = 0; i < before.numel(); ++i)
    moved = std::max(moved, double(std::abs(before.data<float>()[i] - after.data<float>()[i])));
  EXPECT_GT(moved, 1e-4);
}

// A non-finite gradient reaches every rank through the sums, so every rank stops at the same step
// (step 2 here: the first update with a rate of 1e30 leaves non-finite weights).
TEST_F(DataParallel, NonFiniteGradientsStopEveryRankAtTheSameStep) {
  const fs::path run_dir = dir_ / "diverged";
  auto r = train(2, {moe().string(), "--quiet", "-o", run_dir.string(), "--set", "train.lr=1e30", "--set",
                     "train.clip=0"});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(has(r.err, "step 2: non-finite")) << r.err;
  for (const char* other : {"step 1: non-finite", "step 3: non-finite"}) EXPECT_FALSE(has(r.err, other)) << r.err;
  EXPECT_EQ(metrics(run_dir).size(), 1u);
}

TEST_F(DataParallel, DistKeysAreStrict) {
  auto r = train(0, {dense().string(), "--quiet", "-o", (dir_ / "strict").string(), "--set", "dist.shard_optimiser=true"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "unknown key 'dist.shard_optimiser'")) << r.err;
  r = train(0, {dense().string(), "--quiet", "-o", (dir_ / "strict").string(), "--set", "dist.shard_optimizer=3"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "dist.shard_optimizer")) << r.err;
}

TEST_F(DataParallel, ResumesAtTheSameAndAtAnotherWorldSize) {
  const fs::path recipe = moe();
  const fs::path one = dir_ / "one", straight = dir_ / "straight2", same = dir_ / "resumed2", other = dir_ / "from4";
  ASSERT_EQ(train(0, {recipe.string(), "--quiet", "-o", one.string()}).rc, 0);
  ASSERT_EQ(train(2, {recipe.string(), "--quiet", "-o", straight.string()}).rc, 0);
  // Same world size: 10 steps, then resumed to 20, equals the straight run bit for bit.
  auto r = train(2, {recipe.string(), "--quiet", "-o", same.string(), "--max-steps", "10"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = train(2, {recipe.string(), "--quiet", "-o", same.string(), "--resume"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto ms = metrics(straight), mr = metrics(same);
  ASSERT_EQ(ms.size(), 20u);
  ASSERT_EQ(mr.size(), 20u);
  for (size_t i = 10; i < 20; ++i) EXPECT_EQ(ms[i]["loss"].get<double>(), mr[i]["loss"].get<double>()) << i + 1;
  EXPECT_TRUE(same_bytes(straight / "model" / "model.safetensors", same / "model" / "model.safetensors"));
  // Saved at 4 ranks, resumed at 2: the single-process curve and weights.
  r = train(4, {recipe.string(), "--quiet", "-o", other.string(), "--max-steps", "10"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = train(2, {recipe.string(), "--quiet", "-o", other.string(), "--resume"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const double loss = max_relative_loss_difference(one, other, 20);
  const double weights = max_relative_weight_difference(one, other);
  std::printf("[measured] moe saved at 4 ranks, resumed at 2, vs 1 process: loss %.3g, weights %.3g\n", loss, weights);
  EXPECT_LE(loss, 1e-5);
  EXPECT_LE(weights, 1e-5);
}

TEST_F(DataParallel, RankWithoutAMicroBatchIsRefused) {
  auto r = train(2, {dense().string(), "--quiet", "-o", (dir_ / "refused").string(), "--set", "train.grad_accum=1"});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(has(r.err, "train.grad_accum = 1 gives some of the 2 ranks no micro-batch")) << r.err;
}

TEST_F(DataParallel, KilledRankEndsTheJobNamingIt) {
  const std::string tag = "kill" + std::to_string(::getpid());
  const fs::path run_dir = dir_ / "killed";
  const std::string cmd = "exec " + mpirun_prefix(2, tag) + " train" +
                          join_args({dense().string(), "--quiet", "-o", run_dir.string(), "--max-steps", "100000"}) +
                          " >" + quote((dir_ / "kill.out").string()) + " 2>" + quote((dir_ / "kill.err").string());
  const pid_t job = fork();
  ASSERT_GE(job, 0);
  if (job == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  using clock = std::chrono::steady_clock;
  // Wait until the ranks are training (rank 0 has logged a step).
  const auto started = clock::now();
  pid_t victim = 0;
  while (clock::now() - started < std::chrono::seconds(60)) {
    if (metrics(run_dir).size() >= 2 && (victim = find_rank(tag, 1)) != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (victim == 0) {  // end the job, so that it does not train on after the test
    ::kill(job, SIGKILL);
    waitpid(job, nullptr, 0);
    for (int rank : {0, 1})
      if (const pid_t left = find_rank(tag, rank)) ::kill(left, SIGKILL);
  }
  ASSERT_NE(victim, 0) << "the job did not start training: " << slurp(dir_ / "kill.err");
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const auto killed = clock::now();
  int status = 0;
  bool ended = false;
  while (clock::now() - killed < std::chrono::seconds(30)) {
    if (waitpid(job, &status, WNOHANG) == job) {
      ended = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!ended) {  // a hang: end it so the test does not hang too
    ::kill(job, SIGKILL);
    waitpid(job, &status, 0);
    if (const pid_t rank0 = find_rank(tag, 0)) ::kill(rank0, SIGKILL);
  }
  const double seconds = std::chrono::duration<double>(clock::now() - killed).count();
  std::printf("[measured] job ended %.2f s after rank 1 was killed\n", seconds);
  ASSERT_TRUE(ended) << "the job still ran 30 s after a rank was killed";
  EXPECT_LT(seconds, 10.0);
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const std::string err = slurp(dir_ / "kill.err");
  EXPECT_TRUE(has(err, "rank 1")) << err;
  EXPECT_EQ(find_rank(tag, 0), 0) << "rank 0 outlived the job";
}

}  // namespace
