// Tokenizer files of a model. eos ids come from every file that may declare one (tokenizer,
// generation_config.json, config.json; a GGUF's eos and eot), as a chat model may end its turns on
// a token other than the tokenizer's eos. A GGUF vocabulary is copied out as tokenizer.json.
#include "infer/model_files.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "model/json_fields.h"
#include "core/error.h"
#include "core/mapped_file.h"

#include "io/gguf.h"
#include "tokenizer/spm_tokenizer.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

void add_eos_ids(const nlohmann::json& j, const char* key, std::vector<int32_t>& out, const fs::path& file) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return;
  const auto& v = j[key];
  auto add = [&](const nlohmann::json& x) {
    MF_CHECK(x.is_number_integer(), file.string(), ": '", key, "' must be an integer or a list of integers");
    const int32_t id = json_fields::checked_int(x, key, file.string());
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  if (v.is_array()) {
    for (const auto& x : v) add(x);
  } else {
    add(v);
  }
}

std::string template_from_config(const nlohmann::json& cfg, const fs::path& file) {
  if (!cfg.is_object() || !cfg.contains("chat_template")) return "";
  const auto& t = cfg["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {  // named templates: [{"name": "default", "template": "..."}, ...]
    for (const auto& e : t)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template")) return e["template"];
    fail(file.string(), ": chat_template is a list without a 'default' entry");
  }
  if (t.is_null()) return "";
  fail(file.string(), ": chat_template must be a string or a list of named templates");
}

}  // namespace

bool is_gguf_path(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (in && fs::is_regular_file(path) && in.read(magic, 4)) return std::string(magic, 4) == "GGUF";
  return fs::path(path).extension() == ".gguf";
}

TokenizerFiles load_hf_tokenizer_files(const std::string& dir) {
  fs::path d(dir);
  fs::path tj = d / "tokenizer.json";
  fs::path spm = d / "tokenizer.model";  // SentencePiece, read when there is no tokenizer.json
  fs::path char_json = d / kCharTokenizerFile;
  MF_CHECK(fs::exists(tj) || fs::exists(spm) || fs::exists(char_json), dir,
           ": no tokenizer.json or tokenizer.model in the model directory (moeforge needs the HF tokenizer; ",
           "copy tokenizer.json and tokenizer_config.json next to config.json)");
  TokenizerFiles out;
  out.tokenizer = fs::exists(tj)    ? load_hf_tokenizer(tj.string())
                  : fs::exists(spm) ? make_spm_tokenizer(spm_config_from_model_file(spm.string()))
                                    : load_char_tokenizer(char_json.string());
  if (out.tokenizer->eos_id >= 0) out.eos_ids.push_back(out.tokenizer->eos_id);
  fs::path tc = d / "tokenizer_config.json";
  nlohmann::json tcfg = read_json_file_if_present(tc.string());
  out.chat_template = template_from_config(tcfg, tc);
  if (!out.chat_template.empty()) out.chat_template_origin = tc.string() + ":chat_template";
  fs::path jinja = d / "chat_template.jinja";  // newer transformers save it beside the config
  if (out.chat_template.empty() && fs::exists(jinja)) {
    out.chat_template = read_text_file(jinja.string());
    out.chat_template_origin = jinja.string();
  }
  fs::path gc = d / "generation_config.json";
  add_eos_ids(read_json_file_if_present(gc.string()), "eos_token_id", out.eos_ids, gc);
  fs::path cc = d / "config.json";
  add_eos_ids(read_json_file_if_present(cc.string()), "eos_token_id", out.eos_ids, cc);
  return out;
}

BpeVocab load_gguf_bpe_vocab(const std::string& gguf_path) {
  GgufFile f = GgufFile::open(gguf_path);
  const GgufValue* model = f.find("tokenizer.ggml.model");
  MF_CHECK(model, gguf_path, ": no tokenizer.ggml.model metadata (the GGUF carries no tokenizer)");
  MF_CHECK(model->as_string() == "gpt2" || model->as_string() == "llama", gguf_path, ": tokenizer.ggml.model '",
           model->as_string(), "' is not supported (gpt2: byte-level BPE; llama: SentencePiece BPE)");
  BpeVocab v;
  v.source = gguf_path;
  v.model = model->as_string();
  v.tokens = f.at("tokenizer.ggml.tokens").as_string_array();
  if (const GgufValue* m = f.find("tokenizer.ggml.merges")) v.merges = m->as_string_array();
  if (const GgufValue* s = f.find("tokenizer.ggml.scores")) v.scores = s->as_f32_array();
  if (const GgufValue* p = f.find("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = p->as_bool();
  if (const GgufValue* t = f.find("tokenizer.ggml.token_type")) v.token_types = t->as_i32_array();
  if (const GgufValue* p = f.find("tokenizer.ggml.pre")) v.pre = p->as_string();
  if (v.model == "llama") {  // llama.cpp adds BOS for SentencePiece vocabularies unless told otherwise
    v.add_bos = true;
    v.pre = "default";
  }
  auto id = [&](const char* key) -> int32_t {  // range-checked: a u32/u64 id must not wrap to -1
    const GgufValue* x = f.find(key);
    if (!x) return -1;
    const int64_t value = x->as_i64();
    MF_CHECK(value >= -1 && value <= INT32_MAX, gguf_path, ": ", key, " = ", value, " is not a token id");
    return int32_t(value);
  };
  v.bos_id = id("tokenizer.ggml.bos_token_id");
  v.eos_id = id("tokenizer.ggml.eos_token_id");
  v.pad_id = id("tokenizer.ggml.padding_token_id");
  v.unk_id = id("tokenizer.ggml.unknown_token_id");
  if (const GgufValue* b = f.find("tokenizer.ggml.add_bos_token")) v.add_bos = b->as_bool();
  return v;
}

BpeVocab gguf_vocab_of(const std::string& model_path) {
  if (!fs::is_directory(model_path) && is_gguf_path(model_path)) return load_gguf_bpe_vocab(model_path);
  const fs::path d(model_path);
  if (!fs::exists(d / "tokenizer.json") && fs::exists(d / "tokenizer.model"))
    return spm_vocab_for_gguf(spm_config_from_model_file((d / "tokenizer.model").string()));
  return bpe_vocab_from_tokenizer_json((d / "tokenizer.json").string());
}

TokenizerFiles load_gguf_tokenizer_files(const std::string& gguf_path) {
  GgufFile f = GgufFile::open(gguf_path);
  auto id = [&](const char* key) -> int32_t {  // range-checked: a u32/u64 id must not wrap to -1
    const GgufValue* x = f.find(key);
    if (!x) return -1;
    const int64_t value = x->as_i64();
    MF_CHECK(value >= -1 && value <= INT32_MAX, gguf_path, ": ", key, " = ", value, " is not a token id");
    return int32_t(value);
  };
  TokenizerFiles out;
  out.tokenizer = make_bpe_tokenizer(load_gguf_bpe_vocab(gguf_path));
  if (out.tokenizer->eos_id >= 0) out.eos_ids.push_back(out.tokenizer->eos_id);
  int32_t eot = id("tokenizer.ggml.eot_token_id");
  if (eot >= 0 && eot != out.tokenizer->eos_id) out.eos_ids.push_back(eot);
  if (const GgufValue* t = f.find("tokenizer.chat_template")) {
    out.chat_template = t->as_string();
    out.chat_template_origin = gguf_path + ":tokenizer.chat_template";
  }
  return out;
}

TokenizerFiles load_tokenizer_files(const std::string& model_path) {
  if (!std::filesystem::is_directory(model_path) && is_gguf_path(model_path)) return load_gguf_tokenizer_files(model_path);
  return load_hf_tokenizer_files(model_path);
}

void copy_tokenizer_files(const std::string& model_path, const std::string& dir) {
  fs::create_directories(dir);
  const fs::path out(dir);
  auto write = [&](const char* name, const std::string& text) {
    write_file_atomic((out / name).string(), text.data(), text.size());
  };
  if (!fs::is_directory(model_path) && is_gguf_path(model_path)) {
    const BpeVocab v = load_gguf_bpe_vocab(model_path);
    write("tokenizer.json", bpe_vocab_to_tokenizer_json(v));
    // tokenizer_class: what AutoTokenizer instantiates for a bare tokenizer.json.
    nlohmann::json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"add_bos_token", v.add_bos}};
    if (v.bos_id >= 0) cfg["bos_token"] = v.tokens[size_t(v.bos_id)];
    if (v.eos_id >= 0) cfg["eos_token"] = v.tokens[size_t(v.eos_id)];
    const TokenizerFiles tf = load_gguf_tokenizer_files(model_path);
    if (!tf.chat_template.empty()) cfg["chat_template"] = tf.chat_template;
    write("tokenizer_config.json", cfg.dump(2) + "\n");
    nlohmann::json gen = {{"_from_model_config", true}};
    if (v.bos_id >= 0) gen["bos_token_id"] = v.bos_id;
    if (!tf.eos_ids.empty()) gen["eos_token_id"] = tf.eos_ids.size() == 1 ? nlohmann::json(tf.eos_ids[0]) : nlohmann::json(tf.eos_ids);
    write("generation_config.json", gen.dump(2) + "\n");
    return;
  }
  const fs::path src(model_path);
  MF_CHECK(fs::exists(src / "tokenizer.json") || fs::exists(src / "tokenizer.model") ||
               fs::exists(src / kCharTokenizerFile),
           model_path, ": no tokenizer.json (or tokenizer.model, ", kCharTokenizerFile, ") to copy");
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                           "generation_config.json", kCharTokenizerFile}) {
    if (!fs::exists(src / name)) continue;
    if (fs::exists(out / name) && fs::equivalent(src / name, out / name)) continue;
    write(name, read_text_file((src / name).string()));
  }
}

}  // namespace mf
