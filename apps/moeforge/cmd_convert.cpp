// moeforge convert -m MODEL -o OUT: an HF directory or GGUF to a llama-architecture GGUF (dense
// or MoE, tokenizer and chat template embedded, matrices in --type), or to an HF directory.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "core/timer.h"
#include "infer/model_files.h"
#include "model/gguf_export.h"
#include "model/load.h"
#include "model/save.h"

namespace mf::cli {

int run_convert(const std::vector<std::string>& args) {
  std::string model, output, type = "f16", name;
  ArgParser p("moeforge convert -m MODEL -o OUT.gguf|OUT_DIR [--type T]",
              "Converts a model between formats. To a .gguf: llama architecture (Mixtral-layout MoE models become "
              "llama with experts), tokenizer and chat template embedded, weight matrices as --type. To a directory: "
              "config.json + safetensors + tokenizer files (quantized weights become fp32).");
  p.option("model", 'm', "PATH", "model directory or .gguf", &model, true);
  p.option("output", 'o', "PATH", "a path ending in .gguf, else a directory", &output, true);
  p.option("type", 0, "T", "GGUF matrix type: f32, f16 (default), bf16, q8_0, q4_0, q4_1", &type);
  p.option("name", 0, "TEXT", "general.name of the GGUF (default: the model path)", &name);
  if (!parse_or_usage(p, args)) return 0;
  Timer timer;
  const ModelWeights w = load_model_weights(model);
  if (std::filesystem::path(output).extension() == ".gguf") {
    GgufExportOptions o;
    o.matrix_type = parse_dtype(type);
    o.name = name.empty() ? model : name;
    const TokenizerFiles tf = load_tokenizer_files(model);
    o.chat_template = tf.chat_template;
    const bool gguf_source = !std::filesystem::is_directory(model) && is_gguf_path(model);
    const BpeVocab vocab = gguf_source ? load_gguf_bpe_vocab(model)
                                       : bpe_vocab_from_tokenizer_json((std::filesystem::path(model) / "tokenizer.json").string());
    save_gguf_model(w, vocab, output, o);
  } else {
    save_model_weights(w, output);
    copy_tokenizer_files(model, output);
  }
  std::cout << nlohmann::json{{"output", output}, {"seconds", timer.seconds()}}.dump() << std::endl;
  return 0;
}

}  // namespace mf::cli
