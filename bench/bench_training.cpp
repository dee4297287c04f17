// Training throughput: optimizer steps of a MoE on random tokens, median tokens/s and peak RSS,
// as one JSON line. Configurations (the PyTorch reference in run_training_bench.py builds the
// same ones):
//   shakespeare   char-level MoE of examples/shakespeare-moe.yaml, full training
//   smollm2-moe   SmolLM2-135M-shaped MoE (30 layers, 8 experts of 1536, top-2, vocab 49152),
//                 router-only training (experts, attention, embeddings frozen)
//   smollm2-moe-top1  the same at top-1 (renormalised), norms frozen too: each step a forward
//   pretrain-bpe-moe  the BPE MoE of examples/pretrain-bpe-moe.yaml, full training (8 x 256 there)
//   bench_training --config shakespeare [--batch 16] [--seq 256] [--steps 5] [--threads 2]
#include <omp.h>

#include <cstdio>
#include <string>
#include <vector>

#include "bench_common.h"
#include "bench_models.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/init.h"
#include "model/trainable_transformer.h"
#include "train/freeze.h"
#include "train/optimizer.h"

int main(int argc, char** argv) try {
  std::string config = "shakespeare";
  int batch = 16, seq = 256, steps = 5, threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      MF_CHECK(i + 1 < argc, "missing value after ", a);
      return argv[++i];
    };
    if (a == "--config") config = next();
    else if (a == "--batch") batch = std::stoi(next());
    else if (a == "--seq") seq = std::stoi(next());
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--help" || a == "-h") {
      std::puts("usage: bench_training --config shakespeare|smollm2-moe|smollm2-moe-top1|pretrain-bpe-moe [--batch 16] [--seq 256] [--steps 5] [--threads 2]");
      return 0;
    } else mf::fail("unknown argument ", a);
  }
  omp_set_num_threads(threads);
  const mf::ModelConfig c = mf::bench::model_named(config);
  const bool router_only = config.starts_with("smollm2-moe");
  mf::ModelWeights w = mf::init_random_weights(c, 1);
  // smollm2-moe-top1 freezes the norms too, as examples/smolmoe/train-routers.yaml does: only the
  // routers train, so its steps run as forwards (their gates are constant).
  std::vector<std::string> frozen_groups = {"experts", "attention", "embeddings"};
  if (config == "smollm2-moe-top1") frozen_groups.push_back("norm");
  const auto frozen = router_only ? mf::make_freeze_predicate(frozen_groups, w)
                                  : [](const std::string&) { return false; };
  mf::TrainableTransformer model(std::move(w), frozen);
  std::vector<mf::TrainableParam> params = model.trainable_params();
  mf::AdamW opt({{"all", 1e-4f, 0.0f}}, params, {});
  const std::vector<std::span<float>> grads = model.gradients();
  mf::Rng rng(5);
  std::vector<int32_t> tokens(size_t(batch) * seq), targets(tokens.size());
  std::vector<double> rates, cpu_rates;  // tokens per wall second, per CPU second (all threads)
  for (int s = 0; s < steps + 1; ++s) {  // the first step warms up and is dropped
    for (auto& t : tokens) t = int32_t(rng.below(uint64_t(c.vocab_size)));
    for (auto& t : targets) t = int32_t(rng.below(uint64_t(c.vocab_size)));
    mf::Timer t;
    const double cpu0 = mf::process_cpu_seconds();
    model.zero_grad();
    mf::StepOptions o;
    o.lb_coef = 0.01f;
    model.forward_backward(tokens, targets, batch, o);
    mf::clip_grad_norm(grads, 1.0f);
    opt.step();
    if (s) {
      rates.push_back(double(tokens.size()) / t.seconds());
      cpu_rates.push_back(double(tokens.size()) / (mf::process_cpu_seconds() - cpu0));
    }
  }
  int64_t trainable = 0;
  for (const auto& p : params) trainable += int64_t(p.value.size());
  std::printf("{\"bench\":\"training\",\"impl\":\"moeforge\",\"config\":\"%s\",\"router_only\":%s,"
              "\"forward_only_steps\":%s,\"batch\":%d,"
              "\"seq\":%d,\"threads\":%d,\"steps\":%d,\"trainable_params\":%lld,\"tokens_per_s\":%.1f,"
              "\"tokens_per_cpu_s\":%.1f,\"peak_rss_mb\":%.1f}\n",
              config.c_str(), router_only ? "true" : "false", model.routers_train_in_forward() ? "true" : "false", batch,
              seq, threads, steps, (long long)trainable, mf::bench::median(rates), mf::bench::median(cpu_rates),
              mf::peak_rss_mib());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_training: %s\n", e.what());
  return 1;
}
