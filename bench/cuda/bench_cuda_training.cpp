// GPU training throughput of moeforge's CUDA path: optimizer steps on random tokens, median
// tokens/s, the model FLOPs per token and the resulting utilisation, as one JSON line. The
// PyTorch eager reference of the same model runs beside it in bench/run_cuda_bench.py.
//   smollm2-moe  SmolLM2-135M-shaped 8-expert MoE, router-only training (issue goal: >= 3x eager)
//   moe-0.5b     from-scratch MoE of ~0.5B parameters, 8 experts top-2 (goal: >= 40% MFU on H100)
//   bench_cuda_training --config moe-0.5b [--batch 16] [--seq 1024] [--steps 10] [--peak-tflops 989]
#include <cstdio>
#include <string>
#include <vector>

#include "../bench_common.h"
#include "../bench_models.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "gpu/cuda_trainable_model.h"
#include "kernels/cuda/device.h"
#include "model/init.h"
#include "train/freeze.h"
#include "train/optimizer.h"

namespace {


// Matmul FLOPs of one token's forward pass (attention over a causal window of T: on average
// T/2 keys for the scores and as many for the values). Training costs 3x this when every
// weight trains; router-only training skips the frozen weights' gradient GEMMs, so it is
// counted as 2x forward for them.
double forward_flops_per_token(const mf::ModelConfig& c, int64_t T) {
  const double H = c.hidden_size, D = double(c.effective_head_dim());
  const double q = c.num_heads * D, kv = c.num_kv_heads * D, I = c.intermediate_size;
  double per_layer = 2 * (H * q + 2 * H * kv + q * H) + 2 * 2 * (double(T) / 2) * q;
  per_layer += c.is_moe() ? c.top_k * 2 * 3 * H * I + 2 * H * c.num_experts : 2 * 3 * H * I;
  return c.num_layers * per_layer + 2 * H * c.vocab_size;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string config = "moe-0.5b";
  int batch = 16, seq = 1024, steps = 10;
  double peak_tflops = 989;  // H100/H200 SXM dense bf16
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
    else if (a == "--peak-tflops") peak_tflops = std::stod(next());
    else if (a == "--help" || a == "-h") {
      std::puts("usage: bench_cuda_training --config smollm2-moe|moe-0.5b [--batch 16] [--seq 1024] [--steps 10] "
                "[--peak-tflops 989]");
      return 0;
    } else mf::fail("unknown argument ", a);
  }
  mf::cuda::require_device();
  const mf::ModelConfig c = mf::bench::model_named(config);
  const bool router_only = config == "smollm2-moe";
  mf::ModelWeights w = mf::init_random_weights(c, 1);
  const auto frozen = router_only ? mf::make_freeze_predicate({"experts", "attention", "embeddings"}, w)
                                  : std::function<bool(const std::string&)>([](const std::string&) { return false; });
  mf::gpu::CudaTrainableModel model(std::move(w), frozen);
  mf::OptimizerSpec spec;
  spec.groups = {{"all", 1e-4f, 0.0f}};
  spec.group_of = [](const std::string&, const mf::Shape&) { return 0; };
  auto opt = model.make_optimizer(spec);
  mf::Rng rng(5);
  std::vector<int32_t> tokens(size_t(batch) * seq), targets(tokens.size());
  std::vector<double> rates;
  for (int s = 0; s < steps + 2; ++s) {  // two warm-up steps (cuBLAS heuristics, first allocations)
    for (auto& t : tokens) t = int32_t(rng.below(uint64_t(c.vocab_size)));
    for (auto& t : targets) t = int32_t(rng.below(uint64_t(c.vocab_size)));
    mf::Timer t;
    model.zero_grad();
    mf::StepOptions o;
    o.lb_coef = 0.01f;
    model.forward_backward(tokens, targets, batch, o);
    opt->clip_grad_norm(1.0f);  // waits for the step's kernels (it reads the norm back)
    opt->step(1.0f);
    if (s >= 2) rates.push_back(double(tokens.size()) / t.seconds());
  }
  const double tps = mf::bench::median(rates);
  const double fwd = forward_flops_per_token(c, seq);
  const double flops_per_token = router_only ? 2 * fwd : 3 * fwd;
  const double mfu = tps * flops_per_token / (peak_tflops * 1e12);
  std::printf("{\"bench\":\"cuda_training\",\"impl\":\"moeforge\",\"config\":\"%s\",\"router_only\":%s,\"batch\":%d,"
              "\"seq\":%d,\"steps\":%d,\"device\":\"%s\",\"tokens_per_s\":%.1f,\"flops_per_token\":%.4g,"
              "\"mfu\":%.4f,\"peak_tflops\":%.0f}\n",
              config.c_str(), router_only ? "true" : "false", batch, seq, steps, model.device().c_str(), tps,
              flops_per_token, mfu, peak_tflops);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_cuda_training: %s\n", e.what());
  return 1;
}
