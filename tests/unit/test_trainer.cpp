// The training loop end to end on a tiny MoE and a synthetic text (no external data): the
// validation loss falls, metrics and checkpoints are written, a resumed run continues the same
// loss curve bit for bit, a non-finite loss stops with a clear error, and the exported model
// loads for inference.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/token_windows.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"
#include "train/window_data.h"

namespace fs = std::filesystem;

namespace {

std::string synthetic_text() {
  // Patterned but not trivial: a few phrases chosen by a fixed linear congruential sequence.
  const char* phrases[] = {"the cat sat on the mat. ", "a dog ran in the park! ", "we sing of arms and men; ",
                           "to be or not to be? "};
  std::string s;
  uint32_t x = 12345;
  for (int i = 0; i < 900; ++i) {
    x = x * 1103515245u + 12345u;
    s += phrases[(x >> 16) % 4];
  }
  return s;
}

mf::ModelConfig tiny_moe(int vocab) {
  mf::ModelConfig c;
  c.model_type = "mixtral";
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = true;
  return c;
}

struct Fixture {
  std::unique_ptr<mf::Tokenizer> tok;
  mf::TokenSplit data;
  Fixture() {
    const std::string text = synthetic_text();
    tok = mf::make_char_tokenizer(text);
    const std::vector<int32_t> ids = tok->encode(text);
    data = mf::split_tail(ids, 0.1);
  }
};

mf::TrainerConfig base_config(const fs::path& dir) {
  mf::TrainerConfig cfg;
  cfg.steps = 24;
  cfg.batch = 4;
  cfg.seq_len = 24;
  cfg.grad_accum = 2;
  cfg.lr = 3e-3f;
  cfg.warmup = 4;
  cfg.eval_every = 8;
  cfg.eval_windows = 8;
  cfg.seed = 3;
  cfg.progress = false;
  cfg.out_dir = dir.string();
  return cfg;
}

std::vector<std::string> lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("moeforge_trainer_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

auto nothing_frozen = [](const std::string&) { return false; };

mf::WindowData windows(const Fixture& fx, const mf::TrainerConfig& cfg) {
  return mf::WindowData(fx.data, cfg.batch, cfg.seq_len, cfg.eval_windows, cfg.seed);
}

mf::TrainResult train(mf::TrainableTransformer& model, const Fixture& fx, const mf::TrainerConfig& cfg) {
  mf::WindowData data = windows(fx, cfg);
  return mf::Trainer(model, data, cfg).run();
}

TEST(Trainer, LossFallsAndTheRunIsLoggedCheckpointedAndExported) {
  Fixture fx;
  mf::TrainableTransformer model(mf::init_random_weights(tiny_moe(fx.tok->vocab_size()), 1), nothing_frozen);
  const fs::path dir = temp_dir("learn");
  mf::TrainerConfig cfg = base_config(dir);
  cfg.steps = 120;
  cfg.eval_every = 40;
  mf::WindowData data = windows(fx, cfg);
  mf::Trainer trainer(model, data, cfg);
  const double before = trainer.evaluate();
  const mf::TrainResult r = trainer.run();
  EXPECT_EQ(r.steps, 120);
  EXPECT_LT(r.valid_loss, 0.6 * before) << "validation loss " << before << " -> " << r.valid_loss;
  const auto log = lines(dir / "metrics.jsonl");
  ASSERT_EQ(log.size(), 120u);
  const auto last = nlohmann::json::parse(log.back());
  EXPECT_EQ(last["step"], 120);
  EXPECT_TRUE(last.contains("valid_loss") && last.contains("grad_norm") && last.contains("lr"));
  ASSERT_TRUE(last.contains("expert_load"));
  EXPECT_EQ(last["expert_load"].size(), 2u);  // two MoE layers
  ASSERT_EQ(last["router_entropy"].size(), 2u);
  for (double h : last["router_entropy"]) EXPECT_TRUE(h > 0 && h <= std::log(4.0) + 1e-9) << h;
  EXPECT_TRUE(fs::exists(dir / "checkpoint.safetensors"));
  EXPECT_GT(r.best_step, 0);
  EXPECT_LE(r.best_valid_loss, r.valid_loss);
  EXPECT_TRUE(fs::exists(dir / "best" / "model.safetensors") && fs::exists(dir / "best" / "trainer_state.json"));
  // The export loads for inference and gives finite logits.
  mf::Transformer inference(mf::load_model_weights(r.model_dir));
  mf::KVCache cache(inference.config(), 16);
  const std::vector<int32_t> prompt = fx.tok->encode("the cat");
  mf::Tensor logits = inference.forward(prompt, 1, cache);
  for (int64_t i = 0; i < logits.numel(); ++i) ASSERT_TRUE(std::isfinite(logits.data<float>()[i]));
  fs::remove_all(dir);
}

// crash_debris: what a process killed mid-write leaves behind (a log line cut short, a log line
// past the checkpoint, temporary files of interrupted atomic writes); the resume must not mind.
void expect_resume_bit_for_bit(const mf::ModelConfig& config, float balance_bias_rate, const std::string& tag,
                               bool crash_debris = false) {
  Fixture fx;
  const fs::path a = temp_dir("straight" + tag), b = temp_dir("resumed" + tag);
  auto trainer_config = [&](const fs::path& dir) {
    mf::TrainerConfig cfg = base_config(dir);
    cfg.balance_bias_rate = balance_bias_rate;
    return cfg;
  };
  {
    mf::TrainableTransformer model(mf::init_random_weights(config, 7), nothing_frozen);
    train(model, fx, trainer_config(a));
  }
  {
    mf::TrainableTransformer model(mf::init_random_weights(config, 7), nothing_frozen);
    mf::TrainerConfig cfg = trainer_config(b);
    cfg.stop_after = 10;  // as if the process ended after step 10
    train(model, fx, cfg);
  }
  const std::vector<fs::path> debris = {b / "checkpoint.safetensors.tmp.4242", b / "model" / "config.json.tmp.77"};
  if (crash_debris) {
    std::ofstream(b / "metrics.jsonl", std::ios::app) << R"({"step": 11, "loss": 1.5})" << "\n"
                                                      << R"({"step": 12, "lo)";
    for (const fs::path& p : debris) std::ofstream(p) << "partial";
  }
  {
    mf::TrainableTransformer model(mf::init_random_weights(config, 7), nothing_frozen);
    mf::TrainerConfig cfg = trainer_config(b);
    cfg.resume = true;
    train(model, fx, cfg);
  }
  for (const fs::path& p : debris) EXPECT_FALSE(fs::exists(p)) << p << " was left behind";
  const auto la = lines(a / "metrics.jsonl"), lb = lines(b / "metrics.jsonl");
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    auto ja = nlohmann::json::parse(la[i]), jb = nlohmann::json::parse(lb[i]);
    ja.erase("tokens_per_s");
    jb.erase("tokens_per_s");
    EXPECT_EQ(ja, jb) << "step " << i + 1;
  }
  const auto wa = mf::load_model_weights((a / "model").string()), wb = mf::load_model_weights((b / "model").string());
  for (const auto& [name, t] : wa.tensors) {
    const mf::Tensor& u = wb.tensors.at(name);
    ASSERT_EQ(t.nbytes(), u.nbytes());
    EXPECT_EQ(std::memcmp(t.raw(), u.raw(), t.nbytes()), 0) << name << " differs after resuming";
  }
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(Trainer, ResumeIgnoresATornLogLineAndRemovesStaleTemporaries) {
  Fixture fx;
  expect_resume_bit_for_bit(tiny_moe(fx.tok->vocab_size()), 0.0f, "_debris", true);
}

TEST(Trainer, ExportHookRunsForTheBestAndTheFinalModel) {
  Fixture fx;
  mf::TrainableTransformer model(mf::init_random_weights(tiny_moe(fx.tok->vocab_size()), 1), nothing_frozen);
  const fs::path dir = temp_dir("hook");
  mf::TrainerConfig cfg = base_config(dir);
  cfg.steps = 4;
  cfg.eval_every = 2;
  mf::WindowData data = windows(fx, cfg);
  mf::Trainer trainer(model, data, cfg);
  std::vector<std::string> exported;
  trainer.set_export_hook([&](const std::string& d) {
    EXPECT_TRUE(fs::exists(fs::path(d) / "config.json")) << d;  // the weights are there first
    exported.push_back(fs::path(d).filename().string());
  });
  trainer.run();
  ASSERT_FALSE(exported.empty());
  EXPECT_EQ(exported.front(), "best");
  EXPECT_EQ(exported.back(), "model");
  fs::remove_all(dir);
}

TEST(Trainer, ResumedRunContinuesTheSameCurveBitForBit) {
  Fixture fx;
  expect_resume_bit_for_bit(tiny_moe(fx.tok->vocab_size()), 0.0f, "");
}

// Noisy top-k draws its noise from the step, and the selection biases of aux-loss-free
// balancing are saved with the checkpoint, so these runs resume bit for bit too.
TEST(Trainer, NoisyRoutingAndSelectionBiasesResumeBitForBit) {
  Fixture fx;
  mf::ModelConfig c = tiny_moe(fx.tok->vocab_size());
  c.routing.policy = mf::RouterPolicy::NoisyTopK;
  c.routing.capacity_factor = 1.0;
  c.router_selection_bias = true;
  expect_resume_bit_for_bit(c, 0.01f, "_noisy");
}

TEST(Trainer, NonFiniteLossStopsNamingTheStep) {
  Fixture fx;
  mf::ModelWeights w = mf::init_random_weights(tiny_moe(fx.tok->vocab_size()), 2);
  w.tensors.at("model.norm.weight").data<float>()[0] = NAN;
  mf::TrainableTransformer model(std::move(w), nothing_frozen);
  const fs::path dir = temp_dir("nan");
  try {
    train(model, fx, base_config(dir));
    FAIL() << "no error for a NaN loss";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("step 1: non-finite"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "checkpoint.safetensors")) << "a NaN state must never be checkpointed";
  fs::remove_all(dir);
}

// Parameter groups with their own learning rates: with moe_lr_scale 0 the routers and experts
// do not move while everything else trains.
TEST(Trainer, MoeParametersFollowTheirOwnLearningRate) {
  Fixture fx;
  mf::TrainableTransformer model(mf::init_random_weights(tiny_moe(fx.tok->vocab_size()), 4), nothing_frozen);
  const mf::ModelWeights before = mf::init_random_weights(tiny_moe(fx.tok->vocab_size()), 4);
  const fs::path dir = temp_dir("moe_lr");
  mf::TrainerConfig cfg = base_config(dir);
  cfg.steps = 3;
  cfg.moe_lr_scale = 0.0f;
  cfg.weight_decay = 0.0f;
  train(model, fx, cfg);
  int moe = 0, other = 0;
  for (const auto& [name, t] : model.weights().tensors) {
    const mf::Tensor& b = before.tensors.at(name);
    const bool same = std::memcmp(t.raw(), b.raw(), t.nbytes()) == 0;
    if (name.find(".experts.") != std::string::npos || name.find(".block_sparse_moe.gate.") != std::string::npos) {
      EXPECT_TRUE(same) << name << " moved with moe_lr_scale 0";
      ++moe;
    } else {
      EXPECT_FALSE(same) << name << " did not train";
      ++other;
    }
  }
  EXPECT_GT(moe, 0);
  EXPECT_GT(other, 0);
  fs::remove_all(dir);
}

TEST(Trainer, RefusesWhatCannotTrain) {
  Fixture fx;
  mf::TrainableTransformer frozen_all(mf::init_random_weights(tiny_moe(fx.tok->vocab_size()), 1),
                                      [](const std::string&) { return true; });
  const mf::TrainerConfig cfg = base_config(temp_dir("frozen"));
  mf::WindowData data = windows(fx, cfg);
  EXPECT_THROW(mf::Trainer(frozen_all, data, cfg), mf::Error);
  EXPECT_THROW(mf::split_tail(std::vector<int32_t>{1, 2}, 0.01), mf::Error);
}

}  // namespace
