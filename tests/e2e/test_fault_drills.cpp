// Training under faults, as drills on the real CLI:
// - kill -9 at random moments (mid-step, mid-checkpoint, mid-export), then `--resume`, again and
//   again: the run ends with the uninterrupted run's metrics and weights, bit for bit, no
//   temporary files are left, and best/ loads whenever it exists;
// - a full disk (a small tmpfs filled up mid-run; skipped where the test cannot mount one): the
//   run stops at once with a message naming what it could not write, and the checkpoint it
//   leaves resumes to the uninterrupted run's result.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <cstring>
#include <optional>
#include <random>
#include <sys/mount.h>

#include "bounded_run.h"

namespace {
using namespace mf::test;

// A small MoE with routing statistics, evaluation and best-model export, checkpointing often so
// that random kills land inside checkpoint writes too.
std::string recipe_text(const fs::path& corpus, const fs::path& out, int steps) {
  return "model:\n"
         "  init: scratch\n"
         "  config: {model_type: mixtral, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,\n"
         "           num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4,\n"
         "           num_experts_per_tok: 2, max_position_embeddings: 64, tie_word_embeddings: true}\n"
         "tokenizer: char\n"
         "data: {train: " + corpus.string() + ", valid_fraction: 0.1}\n"
         "train: {steps: " + std::to_string(steps) + ", batch: 4, seq_len: 32, lr: 3.0e-3, warmup: 3,\n"
         "        eval_every: 4, checkpoint_every: 2, eval_windows: 4}\n"
         "output: " + out.string() + "\n";
}

// metrics.jsonl without the one field that depends on the clock.
std::vector<nlohmann::json> metrics_without_timing(const fs::path& run_dir) {
  std::vector<nlohmann::json> out;
  std::istringstream in(slurp(run_dir / "metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("tokens_per_s");
    out.push_back(j);
  }
  return out;
}

// Steps logged so far (complete lines of metrics.jsonl).
int64_t metrics_lines(const fs::path& run_dir) {
  const std::string text = slurp(run_dir / "metrics.jsonl");
  return std::count(text.begin(), text.end(), '\n');
}

std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (has(e.path().filename().string(), ".tmp.")) out.push_back(e.path().string());
  return out;
}

class FaultDrills : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    dir_ = fs::temp_directory_path() / ("moeforge_drills_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream text(dir_ / "corpus.txt");
    for (int i = 0; i < 400; ++i) text << "to be or not to be, that is the question " << (i % 11) << ".\n";
  }
  void TearDown() override {
    if (!mounted_.empty()) ::umount2(mounted_.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }

  fs::path write_recipe(const std::string& name, const fs::path& out, int steps) {
    const fs::path p = dir_ / (name + ".yaml");
    std::ofstream(p) << recipe_text(dir_ / "corpus.txt", out, steps);
    return p;
  }

  // The uninterrupted run that the drills must reproduce.
  double reference_run(int steps) {
    const auto r = run_bounded({"train", write_recipe("reference", dir_ / "reference", steps).string(), "--quiet"}, {});
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.seconds;
  }

  void expect_same_as_reference(const fs::path& run) {
    const fs::path ref = dir_ / "reference";
    EXPECT_EQ(metrics_without_timing(run), metrics_without_timing(ref));
    for (const char* f : {"checkpoint.safetensors", "model/model.safetensors", "best/model.safetensors",
                          "best/trainer_state.json"})
      EXPECT_TRUE(slurp(run / f) == slurp(ref / f)) << f << " differs from the uninterrupted run's";
  }

  fs::path dir_;
  std::string mounted_;
};

TEST_F(FaultDrills, KilledAtRandomMomentsThenResumedEqualsTheUninterruptedRun) {
  constexpr int kSteps = 80, kKills = 12;
  const double reference_seconds = reference_run(kSteps);
  const fs::path run_dir = dir_ / "drilled";
  const fs::path recipe = write_recipe("drilled", run_dir, kSteps);
  std::mt19937_64 rng(20261202);
  int kills = 0, kills_leaving_temporaries = 0, best_checks = 0;
  for (int attempt = 0; attempt < kKills; ++attempt) {
    std::vector<std::string> args{"train", recipe.string(), "--quiet"};
    if (fs::exists(run_dir / "checkpoint.safetensors")) args.push_back("--resume");
    // Kill it at a random one of the next 10 steps once the step's metrics line is out, plus a
    // random few milliseconds: inside the step's checkpoint or best-model export, or the next
    // step. Set by progress, not by the clock, so a loaded machine moves the kills but does not
    // spoil them; 10 steps at most per attempt, so the 12 attempts do not finish the 80 steps
    // (a target drawn from all the steps left let a fast start finish the run in 5 attempts).
    const int64_t done = fs::exists(run_dir / "metrics.jsonl") ? metrics_lines(run_dir) : 0;
    const int64_t first = std::min<int64_t>(done + 1, kSteps);
    const int64_t target = std::uniform_int_distribution<int64_t>(first, std::min<int64_t>(first + 9, kSteps))(rng);
    const auto extra = std::chrono::microseconds(std::uniform_int_distribution<int>(0, 20000)(rng));
    std::optional<std::chrono::steady_clock::time_point> reached;
    Bounds b;
    // Every other attempt waits, from there, for a write in progress (a temporary file): a kill
    // inside an atomic write is the case that must leave the previous file intact.
    const bool inside_write = attempt % 2 == 1;
    b.kill_when = [&] {
      if (!reached && metrics_lines(run_dir) >= target) reached = std::chrono::steady_clock::now();
      if (!reached) return false;
      const auto waited = std::chrono::steady_clock::now() - *reached;
      if (inside_write) return !temporaries(run_dir).empty() || waited > std::chrono::milliseconds(300);
      return waited >= extra;
    };
    const BoundedResult r = run_bounded(args, b);
    if (!r.killed) {
      ASSERT_EQ(r.rc, 0) << r.err;  // it finished before its kill
      break;
    }
    ++kills;
    if (!temporaries(run_dir).empty()) ++kills_leaving_temporaries;
    if (fs::exists(run_dir / "best" / "trainer_state.json")) {
      const auto info = run_bounded({"info", "-m", (run_dir / "best").string()}, {});
      EXPECT_EQ(info.rc, 0) << "best/ does not load after a kill: " << info.err;
      ++best_checks;
    }
  }
  std::vector<std::string> args{"train", recipe.string(), "--quiet"};
  if (fs::exists(run_dir / "checkpoint.safetensors")) args.push_back("--resume");
  const BoundedResult last = run_bounded(args, {});
  ASSERT_EQ(last.rc, 0) << last.err;
  EXPECT_TRUE(temporaries(run_dir).empty()) << temporaries(run_dir).front();
  expect_same_as_reference(run_dir);
  EXPECT_GE(kills, 6) << "the drill killed the run too rarely to mean anything";
  std::cout << kills << " kills (" << kills_leaving_temporaries << " inside a write), best/ loaded " << best_checks
            << " times; reference run " << reference_seconds << " s\n";
}

TEST_F(FaultDrills, FullDiskStopsTheRunAndKeepsTheLastCheckpoint) {
  constexpr int kSteps = 400;
  const fs::path mount_point = dir_ / "small_disk";
  fs::create_directories(mount_point);
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=8m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "); the full-disk drill needs root";
  mounted_ = mount_point.string();
  const fs::path run_dir = mount_point / "run";
  const fs::path recipe = write_recipe("full_disk", run_dir, kSteps);

  // Start the run, wait for its first checkpoint, then fill the disk under it.
  const fs::path err_file = dir_ / "full_disk.err";
  const std::string cmd = quote(binary()) + " train " + quote(recipe.string()) + " --quiet 2>" + quote(err_file.string()) +
                          " >/dev/null";
  FILE* child = ::popen(cmd.c_str(), "r");
  ASSERT_NE(child, nullptr);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(run_dir / "checkpoint.safetensors") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  {
    std::ofstream filler(mount_point / "filler", std::ios::binary);
    const std::string block(1 << 16, 'x');
    while (filler.write(block.data(), std::streamsize(block.size())) && filler.flush()) {
    }
  }
  const int status = ::pclose(child);
  const std::string err = slurp(err_file);
  ASSERT_TRUE(WIFEXITED(status)) << err;
  ASSERT_EQ(WEXITSTATUS(status), 1) << "the run did not stop on a full disk: " << err;
  EXPECT_TRUE(has(err, "No space left on device")) << err;
  EXPECT_TRUE(has(err, run_dir.string())) << err;
  EXPECT_TRUE(has(err, "last checkpoint")) << err;
  EXPECT_TRUE(temporaries(run_dir).empty()) << temporaries(run_dir).front();
  const auto j = metrics_without_timing(run_dir);
  ASSERT_FALSE(j.empty());
  EXPECT_LT(j.back()["step"].get<int>(), kSteps) << "the run should have stopped early";

  // The checkpoint it left resumes, on a disk with room, to the uninterrupted run's result.
  fs::remove(mount_point / "filler");
  const fs::path moved = dir_ / "full_disk_resumed";
  fs::copy(run_dir, moved, fs::copy_options::recursive);
  std::ofstream(recipe) << recipe_text(dir_ / "corpus.txt", moved, kSteps);
  reference_run(kSteps);
  const auto resumed = run_bounded({"train", recipe.string(), "--quiet", "--resume"}, {});
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  expect_same_as_reference(moved);
}

}  // namespace
