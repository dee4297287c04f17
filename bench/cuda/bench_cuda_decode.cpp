// GPU decode throughput: prefill a prompt, then greedy-style decode steps at batch 1 and 32,
// median tokens/s over repeated runs, one JSON line per (model, batch).
//   smollm2      SmolLM2-135M (the real Q4_1 GGUF when --gguf is given, else random weights)
//   smollm2-moe  the 8x135M MoE shape (30 layers, 8 experts of 1536, top-2), random weights
//   bench_cuda_decode --config smollm2 [--gguf PATH] [--batch 1] [--prompt 128] [--steps 128] [--runs 3]
#include <cstdio>
#include <string>
#include <vector>

#include "../bench_common.h"
#include "../bench_models.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "gpu/cuda_inference.h"
#include "model/init.h"
#include "model/load.h"

int main(int argc, char** argv) try {
  std::string config = "smollm2", gguf;
  int batch = 1, prompt = 128, steps = 128, runs = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      MF_CHECK(i + 1 < argc, "missing value after ", a);
      return argv[++i];
    };
    if (a == "--config") config = next();
    else if (a == "--gguf") gguf = next();
    else if (a == "--batch") batch = std::stoi(next());
    else if (a == "--prompt") prompt = std::stoi(next());
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--runs") runs = std::stoi(next());
    else if (a == "--help" || a == "-h") {
      std::puts("usage: bench_cuda_decode --config smollm2|smollm2-moe [--gguf PATH] [--batch 1] [--prompt 128] "
                "[--steps 128] [--runs 3]");
      return 0;
    } else mf::fail("unknown argument ", a);
  }
  mf::ModelWeights w = gguf.empty() ? mf::init_random_weights(mf::bench::model_named(config), 1) : mf::load_model_weights(gguf);
  const int vocab = w.config.vocab_size;
  mf::gpu::CudaInference model(std::move(w), prompt + steps, batch);
  mf::Rng rng(7);
  std::vector<int32_t> tokens(size_t(batch) * prompt);
  std::vector<double> rates;
  for (int r = 0; r < runs + 1; ++r) {  // the first run warms up
    model.truncate(0);
    for (auto& t : tokens) t = int32_t(rng.below(uint64_t(vocab)));
    model.forward(tokens, batch);
    std::vector<int32_t> next(static_cast<size_t>(batch));
    mf::Timer t;
    for (int s = 0; s < steps; ++s) {
      for (auto& n : next) n = int32_t(rng.below(uint64_t(vocab)));  // sampling is not what is measured
      model.forward(next, batch);
    }
    if (r) rates.push_back(double(batch) * steps / t.seconds());
  }
  std::printf("{\"bench\":\"cuda_decode\",\"impl\":\"moeforge\",\"config\":\"%s\",\"weights\":\"%s\",\"batch\":%d,"
              "\"prompt\":%d,\"steps\":%d,\"runs\":%d,\"tokens_per_s\":%.1f}\n",
              config.c_str(), gguf.empty() ? "random bf16" : gguf.c_str(), batch, prompt, steps, runs,
              mf::bench::median(rates));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_cuda_decode: %s\n", e.what());
  return 1;
}
