// End-to-end inference benchmark: prefill tokens/s (256-token prompt) and batch-1 decode
// tokens/s for a model file, the machine's streaming read bandwidth, the decode speed that
// bandwidth allows for the weights actually read per token, and peak RSS. One JSON line per
// measurement; medians over --repeats runs. bench/run_inference_bench.py runs it beside the
// PyTorch reference.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/transformer.h"

namespace {

struct Options {
  std::string model;
  int prompt_tokens = 256;
  int decode_tokens = 64;
  int repeats = 5;
  int threads = 2;
  bool f32_weights = false;  // dequantize every matrix to fp32 first (the fp32-vs-fp32 comparison)
  std::string decode = "packed";  // plain: stored layout; packed / int8: Transformer::pack_for_decode
  bool probe_bandwidth = true;  // off: for profiling the model alone
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      MF_CHECK(i + 1 < argc, "missing value after ", a);
      return argv[++i];
    };
    if (a == "-m" || a == "--model") o.model = next();
    else if (a == "--prompt-tokens") o.prompt_tokens = std::stoi(next());
    else if (a == "--decode-tokens") o.decode_tokens = std::stoi(next());
    else if (a == "--repeats") o.repeats = std::stoi(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--weights") {
      const std::string w = next();
      MF_CHECK(w == "f32" || w == "native", "--weights must be f32 or native, not ", w);
      o.f32_weights = w == "f32";
    }
    else if (a == "--decode") {
      const std::string d = next();
      MF_CHECK(d == "plain" || d == "packed" || d == "int8", "--decode must be plain, packed or int8, not ", d);
      o.decode = d;
    }
    else if (a == "--no-bandwidth") o.probe_bandwidth = false;
    else if (a == "--help" || a == "-h") {
      std::puts("usage: bench_inference -m MODEL [--prompt-tokens 256] [--decode-tokens 64] "
                "[--repeats 5] [--threads 2] [--weights native|f32] [--decode plain|packed|int8] [--no-bandwidth]");
      std::exit(0);
    } else mf::fail("unknown argument ", a);
  }
  MF_CHECK(!o.model.empty(), "bench_inference: -m MODEL is required");
  return o;
}

// Bytes of weights one decode step streams from memory: every matrix once, except that of
// MoE experts only top_k of num_experts are touched per token on average. `as_f32`: the
// bytes the same matrices take once dequantized to fp32.
double weight_bytes_per_token(const mf::ModelWeights& w, bool as_f32) {
  double bytes = 0;
  const auto& c = w.config;
  for (const auto& [name, t] : w.tensors) {
    if (t.ndim() < 2) continue;
    if (name == "model.embed_tokens.weight" && !c.tie_word_embeddings) continue;  // one row only
    double b = as_f32 ? double(t.numel()) * 4.0 : double(t.nbytes());
    if (c.is_moe() && name.find(".experts.") != std::string::npos)
      b *= double(c.top_k) / double(c.num_experts);
    bytes += b;
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) try {
  Options opt = parse(argc, argv);
  omp_set_num_threads(opt.threads);
  // GGUF/safetensors loading maps the file; nothing here has started OpenMP threads yet,
  // which the forked bandwidth probes need (libgomp's pool does not survive a fork).
  mf::ModelWeights weights = mf::load_model_weights(opt.model);
  const double bytes_per_token = weight_bytes_per_token(weights, opt.f32_weights);
  const double dram_gbs =
      opt.probe_bandwidth ? mf::bench::measure_read_bandwidth_isolated(opt.threads, size_t(1) << 30) : 0.0;
  const double ws_gbs =
      opt.probe_bandwidth ? mf::bench::measure_read_bandwidth_isolated(opt.threads, size_t(bytes_per_token)) : 0.0;
  std::printf("{\"bench\":\"memory_read_bandwidth\",\"threads\":%d,\"buffer_mb\":1024,\"gb_per_s\":%.2f}\n",
              opt.threads, dram_gbs);
  std::printf("{\"bench\":\"memory_read_bandwidth\",\"threads\":%d,\"buffer_mb\":%.1f,\"gb_per_s\":%.2f,"
              "\"note\":\"working set = weight bytes read per decode token\"}\n",
              opt.threads, bytes_per_token / 1048576.0, ws_gbs);
  if (opt.f32_weights)
    for (auto& [name, t] : weights.tensors) t = t.to_f32();
  mf::Transformer model(std::move(weights));
  const size_t packed_bytes =
      opt.decode == "plain" ? 0
                            : model.pack_for_decode(opt.decode == "int8" ? mf::DecodeActivations::int8
                                                                         : mf::DecodeActivations::fp32);
  const auto& cfg = model.config();

  mf::Rng rng(1234);
  std::vector<int32_t> prompt(size_t(opt.prompt_tokens));
  for (auto& t : prompt) t = int32_t(rng.below(uint64_t(cfg.vocab_size)));

  std::vector<double> prefill_rates, decode_rates;
  mf::KVCache cache(cfg, opt.prompt_tokens + opt.decode_tokens + 1, 1);
  for (int r = 0; r < opt.repeats + 1; ++r) {  // the first run warms caches and is dropped
    cache.reset();
    mf::Timer t;
    mf::Tensor logits = model.forward(prompt, 1, cache);
    const double prefill_s = t.seconds();
    int32_t next = 0;
    t.reset();
    for (int i = 0; i < opt.decode_tokens; ++i) {
      const float* row = logits.data<float>();
      next = int32_t(std::max_element(row, row + cfg.vocab_size) - row);
      logits = model.forward(std::span<const int32_t>(&next, 1), 1, cache);
    }
    const double decode_s = t.seconds();
    if (r == 0) continue;
    prefill_rates.push_back(opt.prompt_tokens / prefill_s);
    decode_rates.push_back(opt.decode_tokens / decode_s);
  }
  const double decode = mf::bench::median(decode_rates);
  // The decode speed the memory system allows when every weight byte is read once per
  // token: from DRAM (buffer >> L3) and from a buffer the size of the weights themselves
  // (which, when the weights fit in the last-level cache, is the real ceiling).
  const double limit_dram = dram_gbs * 1e9 / bytes_per_token;
  const double limit_ws = ws_gbs * 1e9 / bytes_per_token;
  std::printf("{\"bench\":\"inference\",\"impl\":\"moeforge\",\"weights\":\"%s\",\"decode\":\"%s\",\"packed_mb\":%.1f,\"model\":\"%s\",\"threads\":%d,"
              "\"prompt_tokens\":%d,\"decode_tokens\":%d,\"repeats\":%d,"
              "\"prefill_tok_s\":%.2f,\"decode_tok_s\":%.2f,\"weight_mb_per_token\":%.1f,"
              "\"dram_limit_tok_s\":%.2f,\"dram_limit_over_achieved\":%.3f,"
              "\"working_set_limit_tok_s\":%.2f,\"working_set_limit_over_achieved\":%.3f,\"peak_rss_mb\":%.1f}\n",
              opt.f32_weights ? "f32" : "native", opt.decode.c_str(), double(packed_bytes) / 1e6,
              opt.model.c_str(), opt.threads, opt.prompt_tokens, opt.decode_tokens, opt.repeats,
              mf::bench::median(prefill_rates), decode, bytes_per_token / 1e6, limit_dram, limit_dram / decode,
              limit_ws, limit_ws / decode, mf::peak_rss_mib());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_inference: %s\n", e.what());
  return 1;
}
