// moeforge convert -m MODEL -o OUT: an HF directory or GGUF to a llama-architecture GGUF (dense
// or MoE, tokenizer and chat template embedded, matrices in --type: one type or a K-quant mix),
// or to an HF directory.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "core/timer.h"
#include "infer/model_files.h"
#include "io/gguf.h"
#include "model/gguf_export.h"
#include "model/load.h"
#include "model/save.h"

namespace mf::cli {
namespace {

// A published GGUF must not carry the converting machine's paths: the source's own name, or
// the last component of the path (a directory's name, a file's stem).
std::string default_model_name(const std::string& model) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(model) && is_gguf_path(model)) {
    const GgufFile f = GgufFile::open(model);
    if (const GgufValue* n = f.find("general.name"); n && n->type == GgufType::STRING && !n->as_string().empty())
      return n->as_string();
  }
  std::error_code ec;
  fs::path p = fs::weakly_canonical(model, ec);  // "." and "dir/" name the directory itself
  if (ec) p = fs::path(model).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  const std::string stem = fs::is_directory(model) ? p.filename().string() : p.stem().string();
  return stem.empty() || stem == "." || stem == ".." ? "moeforge model" : stem;
}

}  // namespace

int run_convert(const std::vector<std::string>& args) {
  std::string model, output, type = "f16", name, dtype;
  ArgParser p("moeforge convert -m MODEL -o OUT.gguf|OUT_DIR [--type T]",
              "Converts a model between formats. To a .gguf: llama architecture (Mixtral-layout MoE models become "
              "llama with experts), tokenizer and chat template embedded, weight matrices as --type. To a directory: "
              "config.json + safetensors + tokenizer files in the transformers layout that computes the same model "
              "(Mixtral or Qwen2-MoE), or model_type 'moeforge' when none does, so transformers refuses it.");
  p.option("model", 'm', "PATH", "model directory or .gguf", &model, true);
  p.option("output", 'o', "PATH", "a path ending in .gguf, else a directory", &output, true);
  p.option("type", 0, "T",
           "GGUF matrix types, case-insensitive: one type for every matrix (f32, f16 (default), bf16, q8_0, q4_0, "
           "q4_1) or a K-quant mix chosen per tensor as llama-quantize does (q4_K_M, q4_K_S, q5_K_M, q5_K_S, q6_K: "
           "output in Q6_K, attn_v and ffn_down with more bits on some layers; rows not a multiple of 256 fall back "
           "to Q5_0 / Q5_1 / Q8_0)",
           &type);
  p.option("dtype", 0, "T",
           "to a directory: f32, f16 or bf16 for every weight (default: as stored; quantized weights become f32)",
           &dtype);
  p.option("name", 0, "TEXT",
           "general.name of the GGUF (default: the source GGUF's general.name, else the model directory's name; "
           "never a local path)",
           &name);
  p.example("moeforge convert -m runs/smolmoe/routers/model -o smolmoe.Q4_K_M.gguf --type q4_K_M", "a GGUF that llama.cpp runs");
  if (!parse_or_usage(p, args)) return 0;
  Timer timer;
  const bool to_gguf = std::filesystem::path(output).extension() == ".gguf";
  const GgufQuantMix types = to_gguf ? parse_gguf_quant_mix(type) : GgufQuantMix{};  // a typo fails before loading
  const ModelWeights w = load_model_weights(model);
  nlohmann::json summary{{"output", output}};
  if (to_gguf) {
    GgufExportOptions o;
    o.types = types;
    o.name = name.empty() ? default_model_name(model) : name;
    const TokenizerFiles tf = load_tokenizer_files(model);
    o.chat_template = tf.chat_template;
    const BpeVocab vocab = gguf_vocab_of(model);
    summary["type"] = types.name;
    summary["tensor_types"] = save_gguf_model(w, vocab, output, o);
  } else {
    HfSaveOptions o;
    if (!dtype.empty()) o.dtype = parse_hf_dtype(dtype);
    warn_if_moeforge_only(save_model_weights(w, output, o), output);
    copy_tokenizer_files(model, output);
  }
  summary["seconds"] = timer.seconds();
  std::cout << summary.dump() << std::endl;
  return 0;
}

}  // namespace mf::cli
