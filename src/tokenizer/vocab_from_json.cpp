#include <fstream>

#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "core/error.h"
#include "tokenizer/hf_json_parts.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace mf {

namespace {

using json = nlohmann::json;

// The GGUF name (tokenizer.ggml.pre) of the pre-tokenizers bpe_vocab_to_tokenizer_json writes.
std::string pre_name(const json& pre, const std::string& path) {
  const std::string type = pre.is_object() ? pre.value("type", "") : "";
  // llama.cpp's name for GPT-2's split regex is "gpt-2"; it refuses the model on a name it
  // does not know.
  if (type == "ByteLevel" && pre.value("use_regex", true)) return "gpt-2";
  if (type == "Sequence") {
    const json& steps = pre.value("pretokenizers", json::array());
    if (steps.size() == 2 && steps[0].value("type", "") == "Digits" && steps[0].value("individual_digits", false) &&
        steps[1].value("type", "") == "ByteLevel")
      return "smollm";
  }
  fail(path, ": this pre_tokenizer has no GGUF name moeforge knows (ByteLevel -> gpt-2, Digits + ByteLevel -> smollm)");
}

}  // namespace

BpeVocab bpe_vocab_from_tokenizer_json(const std::string& tokenizer_json_path) {
  const json root = read_json_file(tokenizer_json_path);
  if (hf_json::is_sentencepiece_style(root)) return spm_vocab_for_gguf(spm_config_from_tokenizer_json(tokenizer_json_path));
  const json& model = root.value("model", json::object());
  MF_CHECK(model.value("type", "") == "BPE", tokenizer_json_path, ": model.type must be BPE");
  BpeVocab v;
  const json& vocab = model.value("vocab", json::object());
  v.tokens.resize(vocab.size());
  for (const auto& [tok, id] : vocab.items()) {
    const int64_t i = id.get<int64_t>();
    MF_CHECK(i >= 0 && i < int64_t(v.tokens.size()), tokenizer_json_path, ": vocab id ", i, " out of range");
    v.tokens[size_t(i)] = tok;
  }
  v.token_types.assign(v.tokens.size(), 1);
  for (const json& a : root.value("added_tokens", json::array())) {
    const int64_t i = a.at("id").get<int64_t>();
    if (i >= int64_t(v.tokens.size())) {
      v.tokens.resize(size_t(i) + 1);
      v.token_types.resize(size_t(i) + 1, 1);
    }
    v.tokens[size_t(i)] = a.at("content").get<std::string>();
    v.token_types[size_t(i)] = a.value("special", false) ? 3 : 4;  // GGUF: control, user-defined
  }
  for (const json& m : model.value("merges", json::array()))
    v.merges.push_back(m.is_string() ? m.get<std::string>() : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
  v.pre = pre_name(root.value("pre_tokenizer", json()), tokenizer_json_path);
  // Special token ids and add_bos come from tokenizer_config.json beside it, when present.
  const std::string cfg_path =
      tokenizer_json_path.substr(0, tokenizer_json_path.find_last_of('/') + 1) + "tokenizer_config.json";
  std::ifstream probe(cfg_path);
  if (probe) {
    const json cfg = read_json_file(cfg_path);
    auto id_of = [&](const char* key) -> int32_t {
      if (!cfg.contains(key)) return -1;
      const json& t = cfg[key];
      const std::string text = t.is_string() ? t.get<std::string>() : t.is_object() ? t.value("content", "") : "";
      for (size_t i = 0; i < v.tokens.size(); ++i)
        if (!text.empty() && v.tokens[i] == text) return int32_t(i);
      return -1;
    };
    v.bos_id = id_of("bos_token");
    v.eos_id = id_of("eos_token");
    v.pad_id = id_of("pad_token");
    v.unk_id = id_of("unk_token");
    v.add_bos = cfg.value("add_bos_token", false);
  }
  return v;
}

}  // namespace mf
