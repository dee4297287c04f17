#include <cstdio>
#include <iostream>

#include "commands.h"
#include "common.h"

namespace mf::cli {
namespace {

std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2fB", double(n) / 1e9);
  else if (n >= 1'000'000) std::snprintf(buf, sizeof buf, "%.1fM", double(n) / 1e6);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

}  // namespace

int run_info(const std::vector<std::string>& args) {
  std::string path;
  ArgParser p("moeforge info -m PATH", "Describes a model: architecture, sizes, experts, weights, tokenizer and chat template.");
  p.option("model", 'm', "PATH", "HF model directory or .gguf file", &path, true);
  p.example("moeforge info -m ~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf", "architecture, sizes, experts, tokenizer and chat template");
  if (!parse_or_usage(p, args)) return 0;
  LoadOptions lo;
  lo.max_context = 1;  // info never runs the model; keep the KV cache tiny
  ModelBundle m = load_model_bundle(path, lo);
  const ModelSummary& s = m.summary;
  std::cout << "path: " << s.path << "\n"
            << "format: " << s.format << "\n"
            << "architecture: " << s.architecture << "\n"
            << "layers: " << s.layers << "\n"
            << "hidden size: " << s.hidden << "\n"
            << "intermediate size: " << s.intermediate << "\n"
            << "attention heads: " << s.heads << "\n"
            << "kv heads: " << s.kv_heads << "\n"
            << "head dim: " << s.head_dim << "\n"
            << "vocab size: " << s.vocab << "\n"
            << "context length: " << s.context << "\n"
            << "parameters: " << human_count(s.params_total) << " total, " << human_count(s.params_active)
            << " active per token (" << s.params_total << " / " << s.params_active << ")\n";
  if (s.experts > 0) std::cout << "experts: " << s.moe_layout << "\n";
  else std::cout << "experts: none (dense)\n";
  std::cout << "weight dtypes:";
  for (const auto& [dt, n] : s.weight_dtypes) std::cout << " " << dt << " x" << n;
  std::cout << "\n"
            << "tokenizer: " << s.tokenizer_kind << ", " << s.tokenizer_vocab << " tokens\n"
            << "chat template: " << s.chat_template_family << " (" << s.chat_template_origin << ")\n";
  return 0;
}

}  // namespace mf::cli
