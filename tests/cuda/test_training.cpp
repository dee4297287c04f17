// The CUDA training model against the CPU one (itself checked against PyTorch): loss and every
// gradient on tiny dense and MoE models, router-only training, the optimizer state round trip,
// and a short training run whose loss curve tracks the CPU run's. Weights are rounded to bf16
// first, so both sides start from the same values, and routing decisions are clear-cut
// (cuda_model_util.h); the rest of the difference is the GPU's bf16 activations, hence the
// tolerances.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <unistd.h>

#include "core/error.h"
#include "cuda_model_util.h"
#include "cuda_test_util.h"
#include "gpu/cuda_trainable_model.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "train/trainer.h"
#include "train/window_data.h"

namespace {

using namespace mf::cuda::testing;

mf::ModelConfig tiny(const std::string& kind) {
  mf::ModelConfig c;
  c.model_type = kind == "dense" ? "llama" : "mixtral";
  c.vocab_size = 97;
  c.hidden_size = 128;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;  // head_dim 32
  c.num_kv_heads = 2;
  c.max_position_embeddings = 64;
  // MoE models get clear-routing embeddings of size ~3.6 per element (cuda_model_util.h): tied,
  // they would make the head's logits ~300, where bf16 logits are 2 apart, so the softmax (and
  // the embedding gradient through the head) could not match the CPU's, and the loss (~250
  // nats) would not come down in a short run on either device. Their heads are untied.
  c.tie_word_embeddings = kind == "dense";
  if (kind != "dense") {
    c.num_experts = 4;
    c.top_k = 2;
  }
  if (kind == "switch_capacity") {
    c.routing.policy = mf::RouterPolicy::Switch;
    c.top_k = 1;
    c.routing.capacity_factor = 1.0;
  }
  if (kind == "noisy") c.routing.policy = mf::RouterPolicy::NoisyTopK;
  if (kind == "qwen2_bias") {
    c.model_type = "qwen2";
    c.num_experts = 0;
    c.top_k = 0;
    c.attention_bias = true;
  }
  if (kind == "shared_gated") {
    c.shared_expert_intermediate_size = 48;
    c.shared_expert_gated = true;
  }
  if (kind == "topk_softmax_bias") {
    c.routing.policy = mf::RouterPolicy::TopKSoftmax;
    c.router_selection_bias = true;
  }
  return c;
}

mf::ModelWeights bf16_weights(const mf::ModelConfig& c, uint64_t seed) {
  mf::ModelWeights w = clear_routing_weights(c, seed);
  // Attention biases start at zero; random ones make their forward part of the comparison.
  mf::Rng rng(seed + 7);
  for (auto& [name, t] : w.tensors)
    if (name.ends_with("_proj.bias")) {
      std::vector<float> v(size_t(t.numel()));
      for (float& x : v) x = round_bf16(0.1f * rng.normal());
      t = mf::Tensor::from_f32(t.shape(), v);
    }
  return w;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
  int rows = 0;
};

Batch random_batch(int rows, int T, int vocab, uint64_t seed) {
  mf::Rng rng(seed);
  Batch b;
  b.rows = rows;
  for (int i = 0; i < rows * T; ++i) {
    b.tokens.push_back(int32_t(rng.next_u64() % uint64_t(vocab)));
    // Every fifth position has no target, as prompts and padding in instruction data.
    b.targets.push_back(i % 5 == 4 ? -1 : int32_t(rng.next_u64() % uint64_t(vocab)));
  }
  return b;
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

class CudaTraining : public CudaTest {
 protected:
  mf::gpu::CudaDeviceOptions options() const {
    mf::gpu::CudaDeviceOptions o;
    o.arena_bytes = size_t(256) << 20;
    return o;
  }

  // Loss parts and every trainable gradient of one forward/backward, CPU against GPU.
  void compare(const mf::ModelConfig& c, const std::function<bool(const std::string&)>& frozen,
               bool lb_per_sequence = false) {
    const mf::ModelWeights w = bf16_weights(c, 11);
    mf::TrainableTransformer cpu(w, frozen);
    mf::gpu::CudaTrainableModel gpu(w, frozen, options());
    const Batch b = random_batch(3, 24, c.vocab_size, 5);
    mf::StepOptions opts;
    opts.lb_coef = 0.01f;
    opts.z_coef = 0.001f;
    opts.lb_per_sequence = lb_per_sequence;
    const mf::TrainingLoss lc = cpu.forward_backward(b.tokens, b.targets, b.rows, opts);
    const mf::TrainingLoss lg = gpu.forward_backward(b.tokens, b.targets, b.rows, opts);
    EXPECT_EQ(lg.lm_tokens, lc.lm_tokens);
    EXPECT_NEAR(lg.lm(), lc.lm(), 2e-2 * std::fabs(lc.lm()));
    EXPECT_NEAR(lg.lb, lc.lb, 2e-2 * std::fabs(lc.lb) + 1e-6);
    EXPECT_NEAR(lg.z, lc.z, 5e-2 * std::fabs(lc.z) + 1e-6);
    // Same routing on both sides, else the gradients are not comparable.
    ASSERT_EQ(gpu.routing_stats().size(), cpu.routing_stats().size());
    for (size_t l = 0; l < cpu.routing_stats().size(); ++l) {
      const mf::RoutingTally &g = gpu.routing_stats()[l], &want = cpu.routing_stats()[l];
      EXPECT_EQ(g.load, want.load) << "MoE layer " << l;
      EXPECT_EQ(g.assignments, want.assignments) << "MoE layer " << l;
      EXPECT_EQ(g.dropped, want.dropped) << "MoE layer " << l;
      EXPECT_EQ(g.tokens, want.tokens) << "MoE layer " << l;
      EXPECT_EQ(g.unrouted, want.unrouted) << "MoE layer " << l;
      EXPECT_EQ(g.capacity_slots, want.capacity_slots) << "MoE layer " << l;
      EXPECT_EQ(g.entropy_tokens, want.entropy_tokens) << "MoE layer " << l;
      EXPECT_EQ(g.passes, want.passes) << "MoE layer " << l;
      EXPECT_EQ(g.expert_choice, want.expert_choice) << "MoE layer " << l;
      // bf16 activations move the router logits a little: the entropy and losses within 2%.
      EXPECT_NEAR(g.entropy(), want.entropy(), 2e-2 * want.entropy() + 1e-6) << "MoE layer " << l;
      EXPECT_NEAR(g.lb(), want.lb(), 2e-2 * std::fabs(want.lb()) + 1e-6) << "MoE layer " << l;
      EXPECT_NEAR(g.z(), want.z(), 5e-2 * std::fabs(want.z()) + 1e-6) << "MoE layer " << l;
    }
    const std::vector<std::string> names = gpu.trainable_names();
    ASSERT_FALSE(names.empty());
    for (const std::string& name : names) {
      const std::vector<float>* want = cpu.grad(name);
      ASSERT_NE(want, nullptr) << name << " trains on the GPU but not on the CPU";
      const std::vector<float> got = gpu.grad(name);
      ASSERT_EQ(got.size(), want->size()) << name;
      EXPECT_LT(rel_l2(got, *want), 5e-2) << name;
    }
  }
};

auto nothing_frozen = [](const std::string&) { return false; };

TEST_F(CudaTraining, DenseLossAndGradientsMatchCpu) { compare(tiny("dense"), nothing_frozen); }
TEST_F(CudaTraining, UntiedDenseLossAndGradientsMatchCpu) {
  mf::ModelConfig c = tiny("untied");
  c.num_experts = 0;
  c.top_k = 0;
  c.model_type = "llama";
  compare(c, nothing_frozen);
}
TEST_F(CudaTraining, Qwen2AttentionBiasesMatchCpu) { compare(tiny("qwen2_bias"), nothing_frozen); }
TEST_F(CudaTraining, SoftmaxTopKMoeMatchesCpu) { compare(tiny("moe"), nothing_frozen); }
TEST_F(CudaTraining, SwitchWithCapacityDropsLikeCpu) { compare(tiny("switch_capacity"), nothing_frozen); }
TEST_F(CudaTraining, TopKSoftmaxWithSelectionBiasMatchesCpu) { compare(tiny("topk_softmax_bias"), nothing_frozen); }

TEST_F(CudaTraining, GatedSharedExpertMatchesCpu) { compare(tiny("shared_gated"), nothing_frozen); }
TEST_F(CudaTraining, NoisyTopKDrawsTheCpuNoise) { compare(tiny("noisy"), nothing_frozen); }
TEST_F(CudaTraining, PerSequenceBalanceLossMatchesCpu) { compare(tiny("moe"), nothing_frozen, true); }

TEST_F(CudaTraining, RouterOnlyTrainingReachesEveryRouter) {
  compare(tiny("moe"), [](const std::string& n) { return n.find(".gate.weight") == std::string::npos; });
}

TEST_F(CudaTraining, OptimizerStateRoundTrips) {
  const mf::ModelConfig c = tiny("moe");
  mf::gpu::CudaTrainableModel gpu(bf16_weights(c, 3), nothing_frozen, options());
  mf::OptimizerSpec spec;
  spec.groups = {{"all", 1e-3f, 0.1f}};
  spec.group_of = [](const std::string&, const mf::Shape&) { return 0; };
  auto opt = gpu.make_optimizer(spec);
  const Batch b = random_batch(2, 16, c.vocab_size, 9);
  gpu.zero_grad();
  gpu.forward_backward(b.tokens, b.targets, b.rows, {});
  opt->clip_grad_norm(1.0f);
  opt->step(1.0f);
  std::map<std::string, std::vector<float>> saved;
  opt->visit_state([&](const std::string& name, std::span<float> value, std::span<float> m, std::span<float> v) {
    auto& s = saved[name];
    s.assign(value.begin(), value.end());
    s.insert(s.end(), m.begin(), m.end());
    s.insert(s.end(), v.begin(), v.end());
  });
  // Restoring what was saved and saving again gives the same state.
  opt->restore_state([&](const std::string& name, std::span<float> value, std::span<float> m, std::span<float> v) {
    const auto& s = saved.at(name);
    std::copy_n(s.begin(), value.size(), value.begin());
    std::copy_n(s.begin() + value.size(), m.size(), m.begin());
    std::copy_n(s.begin() + 2 * value.size(), v.size(), v.begin());
  });
  opt->visit_state([&](const std::string& name, std::span<float> value, std::span<float> m, std::span<float> v) {
    const auto& s = saved.at(name);
    for (size_t i = 0; i < value.size(); ++i) ASSERT_EQ(value[i], s[i]) << name;
    for (size_t i = 0; i < m.size(); ++i) ASSERT_EQ(m[i], s[value.size() + i]) << name;
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], s[2 * value.size() + i]) << name;
  });
}

TEST_F(CudaTraining, ShortRunTracksCpuLossCurve) {
  const mf::ModelConfig c = tiny("moe");
  std::vector<int32_t> stream;
  mf::Rng rng(4);
  // A learnable sequence: a repeating pattern with a little noise.
  for (int i = 0; i < 6000; ++i) stream.push_back(rng.uniform() < 0.1f ? int32_t(rng.next_u64() % 97) : int32_t(i % 13));
  const mf::TokenSplit split = mf::split_tail(stream, 0.1);
  auto run = [&](bool on_gpu) {
    mf::TrainerConfig cfg;
    cfg.steps = 30;
    cfg.batch = 4;
    cfg.seq_len = 32;
    cfg.lr = 3e-3f;
    cfg.warmup = 3;
    cfg.eval_every = 0;
    cfg.eval_windows = 8;
    cfg.progress = false;
    cfg.out_dir = (std::filesystem::temp_directory_path() /
                   ("moeforge_cuda_run_" + std::to_string(on_gpu) + "_" + std::to_string(::getpid())))
                      .string();
    mf::WindowData data(split, cfg.batch, cfg.seq_len, cfg.eval_windows, cfg.seed);
    const mf::ModelWeights w = bf16_weights(c, 8);
    if (on_gpu) {
      mf::gpu::CudaTrainableModel model(w, nothing_frozen, options());
      return mf::Trainer(model, data, cfg).run();
    }
    mf::TrainableTransformer model(w, nothing_frozen);
    return mf::Trainer(model, data, cfg).run();
  };
  const mf::TrainResult cpu = run(false), gpu = run(true);
  EXPECT_LT(gpu.valid_loss, 0.8 * std::log(97.0)) << "the GPU run did not learn";
  EXPECT_NEAR(gpu.valid_loss, cpu.valid_loss, 0.05 * cpu.valid_loss);
}

// These need no GPU. The comparison tests above rely on routing decisions that bf16 activations
// cannot flip: on the CPU, every token's k-th and (k+1)-th router logits of every MoE layer are
// far apart compared with the bf16 error (~0.5% of logits of size ~3).
TEST(CudaTrainingSupport, TestModelsRouteWithClearMargins) {
  for (const char* kind : {"moe", "switch_capacity", "topk_softmax_bias", "noisy", "shared_gated"}) {
    const mf::ModelConfig c = tiny(kind);
    mf::Transformer cpu(bf16_weights(c, 11));
    mf::KVCache cache(c, 64, 3);
    const Batch b = random_batch(3, 24, c.vocab_size, 5);
    std::vector<mf::Tensor> logits;
    mf::ForwardOptions fo;
    fo.router_logits = &logits;
    cpu.forward(b.tokens, b.rows, cache, fo);
    const int k = c.routing.policy == mf::RouterPolicy::Switch ? 1 : c.top_k;
    double smallest = 1e30;
    for (const mf::Tensor& t : logits)
      for (int64_t r = 0; r < t.dim(0); ++r) {
        std::vector<float> row(t.data<float>() + r * t.dim(1), t.data<float>() + (r + 1) * t.dim(1));
        std::sort(row.rbegin(), row.rend());
        smallest = std::min(smallest, double(row[size_t(k) - 1] - row[size_t(k)]));
      }
    EXPECT_GT(smallest, 0.2) << kind << ": a routing decision is close enough to flip under bf16";
  }
}

// What the CUDA path refuses, it names.
TEST(CudaTrainingSupport, UnsupportedFeaturesAreNamed) {
  mf::ModelConfig c = tiny("moe");
  EXPECT_EQ(mf::gpu::cuda_training_unsupported(c), "");
  c.routing.policy = mf::RouterPolicy::NoisyTopK;
  EXPECT_EQ(mf::gpu::cuda_training_unsupported(c), "");
  c.routing.policy = mf::RouterPolicy::ExpertChoice;
  EXPECT_EQ(mf::gpu::cuda_training_unsupported(c), "expert_choice routing");
  c = tiny("moe");
  c.sliding_window = 16;
  EXPECT_EQ(mf::gpu::cuda_training_unsupported(c), "sliding-window attention");
  c = tiny("dense");
  c.hidden_size = 80;  // head_dim 20
  EXPECT_NE(mf::gpu::cuda_training_unsupported(c).find("head_dim 20"), std::string::npos);
}

TEST(CudaTrainingSupport, NoDeviceIsAClearError) {
  if (mf::cuda::device_count() > 0) GTEST_SKIP() << "a device is present";
  try {
    mf::gpu::CudaTrainableModel gpu(bf16_weights(tiny("moe"), 1), nothing_frozen);
    FAIL() << "constructed without a GPU";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--device cpu"), std::string::npos) << e.what();
  }
}

}  // namespace
