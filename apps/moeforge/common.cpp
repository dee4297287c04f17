#include "common.h"
#include "device_choice.h"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>

#include "core/timer.h"
#include "core/work_pool.h"
#include "model/generation_config.h"
#include "model/transformer.h"

namespace mf::cli {

void add_run_flags(ArgParser& p, RunFlags& f) {
  f.sampling.temperature = 0.7f;
  f.sampling.top_k = 40;
  f.sampling.top_p = 0.95f;
  f.sampling.min_p = 0.05f;
  p.group("model");
  p.option("model", 'm', "PATH", "HF model directory or .gguf file", &f.model_path, true);
  p.option("system", 0, "TEXT", "system prompt", &f.system);
  p.group("sampling (* = unless the model's generation_config.json sets it)");
  p.option("temperature", "T", "sampling temperature, 0 = greedy (default 0.7*)", &f.sampling.temperature);
  p.option("top-k", "K", "keep the K most likely tokens, 0 = off (default 40*)", &f.sampling.top_k);
  p.option("top-p", "P", "nucleus sampling mass, 1 = off (default 0.95*)", &f.sampling.top_p);
  p.option("min-p", "P", "drop tokens below P x the best probability (default 0.05*)", &f.sampling.min_p);
  p.option("repeat-penalty", "R", "HF repetition penalty, 1 = off (default 1*)", &f.sampling.repeat_penalty);
  p.option("seed", "N", "sampling seed (default: a random one, shown by --verbose)", &f.sampling.seed);
  p.option("max-tokens", "N", "most tokens to generate (default 256*)", &f.max_tokens);
  p.repeated("stop", "TEXT", "stop when TEXT is generated (not printed)", &f.stop);
  p.flag("ignore-eos", "keep generating past the end-of-sequence token (benchmarks: always --max-tokens tokens)",
         &f.ignore_eos);
  p.group("runtime");
  p.option("threads", "N", "CPU threads, 0 = all (default 0)", &f.threads);
  p.option("ctx", "N", "context length cap in tokens (default 4096)", &f.ctx);
  p.option("window", "N", "let the model see only the last N tokens (a model trained on N-token windows); "
           "0 = all (default 0)", &f.window);
  p.flag("int8", "compute Q4_0/Q4_1/Q8_0 weights with int8 activations (decode and prompts), as llama.cpp "
         "does: faster, but logits move by a few % (default: fp32 activations, the PyTorch-checked path)", &f.int8);
  add_kv_cache_flags(p, f.cache_type_k, f.cache_type_v);
  add_expert_cache_flag(p, f.expert_cache_mib);
  p.option("device", 0, "auto|cpu|cuda", "where to run; auto = cuda when a GPU is present and the CUDA path "
           "runs the model (default auto)", &f.device);
  p.flag("verbose", "print load and speed details to stderr", &f.verbose);
  p.group("");  // what a command declares next is its own
  // The spellings llama.cpp's tools take for the same options.
  p.alias("-sys", "system");
  p.alias("--temp", "temperature");
  p.alias("-s", "seed");
  p.alias("-n", "max-tokens");
  p.alias("--n-predict", "max-tokens");
  p.alias("-t", "threads");
  p.alias("-c", "ctx");
  p.alias("--ctx-size", "ctx");
}

void add_kv_cache_flags(ArgParser& p, std::string& key_type, std::string& value_type) {
  p.option("cache-type-k", 0, "TYPE", "KV cache keys as f32, f16 or bf16: 16 bits halve the cache's memory and what "
           "attention reads per token, rounding each key (default f32, the PyTorch-checked path)", &key_type);
  p.option("cache-type-v", 0, "TYPE", "KV cache values as f32, f16 or bf16 (default f32)", &value_type);
  p.alias("-ctk", "cache-type-k");
  p.alias("-ctv", "cache-type-v");
}

void add_expert_cache_flag(ArgParser& p, int& mib) {
  p.option("expert-cache", 0, "MiB", "most memory for a MoE's routed experts packed for decode: beyond it the least "
           "recently routed are dropped, their pages of the model file released, and packed again when a token "
           "routes to them; 0 = no limit (default 0)", &mib);
}

size_t expert_cache_bytes(int mib) {
  if (mib < 0) throw UsageError(cat("--expert-cache must be >= 0 MiB, got ", mib));
  return size_t(mib) << 20;
}

KVCacheTypes kv_cache_types(const std::string& key_type, const std::string& value_type) {
  try {
    return {parse_kv_cache_type(key_type, "--cache-type-k"), parse_kv_cache_type(value_type, "--cache-type-v")};
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

bool parse_or_usage(ArgParser& p, const std::vector<std::string>& args) {
  try {
    return p.parse(args, std::cout);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

namespace {

// Sampling values the user did not type come from the model's generation_config.json when it
// sets them (as transformers reads them: do_sample false means greedy), else stay moeforge's
// llama.cpp-like defaults. Returns the file read, or "" when there is none.
std::string apply_generation_config(const ArgParser& p, RunFlags& f) {
  namespace fs = std::filesystem;
  const fs::path path = fs::path(f.model_path) / "generation_config.json";
  std::error_code ec;
  if (!fs::is_directory(f.model_path, ec) || !fs::exists(path, ec)) return "";
  const GenerationConfig g = load_generation_config(path.string());
  auto take = [&](const char* flag, const auto& from, auto& to) {
    if (from && !p.given(flag)) to = *from;
  };
  take("temperature", g.temperature, f.sampling.temperature);
  take("top-k", g.top_k, f.sampling.top_k);
  take("top-p", g.top_p, f.sampling.top_p);
  take("min-p", g.min_p, f.sampling.min_p);
  take("repeat-penalty", g.repetition_penalty, f.sampling.repeat_penalty);
  take("max-tokens", g.max_new_tokens, f.max_tokens);
  if (g.do_sample == false && !p.given("temperature")) f.sampling.temperature = 0.0f;
  return path.string();
}

}  // namespace

ModelBundle load_for_run(RunFlags& f, const ArgParser& p) {
  const std::string defaults_file = apply_generation_config(p, f);
  if (!p.given("seed")) f.sampling.seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
  try {
    f.sampling.validate();
  } catch (const Error& e) {
    if (!defaults_file.empty()) fail(defaults_file, ": ", e.what(), " (a value of the model's; a flag overrides it)");
    throw UsageError(e.what());
  }
  if (f.verbose)
    std::cerr << "sampling: temperature " << f.sampling.temperature << ", top-k " << f.sampling.top_k << ", top-p "
              << f.sampling.top_p << ", min-p " << f.sampling.min_p << ", repeat-penalty " << f.sampling.repeat_penalty
              << ", max-tokens " << f.max_tokens << (defaults_file.empty() ? "" : " (defaults from " + defaults_file + ")")
              << "; seed " << f.sampling.seed << (p.given("seed") ? "" : " (random; --seed " +
                                                   std::to_string(f.sampling.seed) + " repeats this run)") << "\n";
  if (f.max_tokens < 0) throw UsageError(cat("--max-tokens must be >= 0, got ", f.max_tokens));
  if (f.ctx <= 0) throw UsageError(cat("--ctx must be > 0, got ", f.ctx));
  if (f.window < 0) throw UsageError(cat("--window must be >= 0, got ", f.window));
  if (f.threads < 0) throw UsageError(cat("--threads must be >= 0, got ", f.threads));
  check_device_flag(f.device);
  LoadOptions lo;
  lo.max_context = f.ctx;
  lo.threads = f.threads;
  lo.int8_decode = f.int8;
  lo.expert_cache_bytes = expert_cache_bytes(f.expert_cache_mib);
  lo.kv_cache = kv_cache_types(f.cache_type_k, f.cache_type_v);
  lo.make_model = inference_model_factory(f.device);
  Timer t;
  ModelBundle m = load_model_bundle(f.model_path, lo);
  if (f.verbose)
    std::cerr << "loaded " << f.model_path << " (" << m.summary.architecture << ", " << m.summary.layers
              << " layers, context " << m.model->context_length() << ") in " << t.seconds() << " s; decode: "
              << m.summary.decode_activations << " activations, " << (m.summary.decode_packed_bytes >> 20)
              << " MiB of weights packed for it"
              << (f.expert_cache_mib ? cat(" (routed experts' copies capped at ", f.expert_cache_mib, " MiB)") : "")
              << "; KV cache " << m.summary.kv_cache << "\n";
  // The CUDA model keeps its own cache: say so rather than drop the flags in silence.
  if (!m.model->cpu_transformer() && (lo.kv_cache.keys != DType::F32 || lo.kv_cache.values != DType::F32))
    std::cerr << "note: --cache-type-k/-v apply to the CPU model; the CUDA model keeps its own KV cache\n";
  return m;
}

GenerateOptions generate_options(const RunFlags& f, const ModelBundle& m) {
  GenerateOptions o;
  o.max_tokens = f.max_tokens;
  o.sampling = f.sampling;
  o.stop = f.stop;
  if (!f.ignore_eos) o.eos_ids = m.eos_ids;
  o.window = f.window;
  return o;
}

void print_stats(const GenerateStats& s, bool verbose) {
  std::fprintf(stderr, "[prefill: %d tokens (%d reused), %.1f tok/s | decode: %d tokens, %.1f tok/s]\n",
               s.prompt_tokens, s.reused_tokens, s.prefill_tokens_per_second(), s.generated_tokens,
               s.decode_tokens_per_second());
  if (verbose) {
    std::fprintf(stderr, "[prefill: %.4f s wall, %.4f s CPU | decode: %.4f s wall, %.4f s CPU]\n", s.prefill_seconds,
                 s.prefill_cpu_seconds, s.decode_seconds, s.decode_cpu_seconds);
    // Loops the work pool ran on one thread because a thread it waited for had lost its core.
    if (const int64_t serial = parallel_loops_run_serially_after_stalls(); serial > 0)
      std::fprintf(stderr, "[busy machine: %lld parallel loops ran on one thread after a thread stalled]\n",
                   static_cast<long long>(serial));
  }
}

void print_expert_copies(const ModelBundle& m) {
  const Transformer* t = m.model->cpu_transformer();
  const PackedCopies* copies = t ? t->expert_copies() : nullptr;
  if (!copies || copies->copies_made() == 0) return;
  std::fprintf(stderr, "[routed experts: %lld packed, %lld dropped, %.1f MiB held%s]\n",
               static_cast<long long>(copies->copies_made()), static_cast<long long>(copies->copies_dropped()),
               double(copies->resident_bytes()) / (1 << 20),
               copies->budget_bytes() ? cat(" of a ", copies->budget_bytes() >> 20, " MiB budget").c_str() : "");
}

void warn_if_moeforge_only(const HfLayout& layout, const std::string& dir) {
  if (layout.blockers.empty()) return;
  std::fprintf(stderr,
               "note: %s is written as model_type '%s': no transformers architecture computes %s, so transformers "
               "refuses it instead of running a different model (moeforge reads it)\n",
               dir.c_str(), layout.model_type.c_str(), describe_blockers(layout).c_str());
}

}  // namespace mf::cli
