// BpeVocab (GGUF tokenizer.ggml.*) -> BPE tokenizer.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/unicode.h"

namespace mf {
namespace {

constexpr int32_t kTypeControl = 3, kTypeUserDefined = 4;

// tokenizer.ggml.pre names -> the pre-tokenizer HF's tokenizer.json for that family describes.
void configure_pre(const std::string& pre, BpeConfig& c) {
  using Kind = PreTokenizeStep::Kind;
  if (pre == "gpt-2" || pre == "gpt2" || pre == "default" || pre.empty()) {  // "gpt2": older moeforge files
    c.pre.steps = {{Kind::Split, false, SplitPattern::Gpt2}};
  } else if (pre == "smollm" || pre == "starcoder" || pre == "refact") {
    c.pre.steps = {{Kind::Digits, true, SplitPattern::Gpt2}, {Kind::Split, false, SplitPattern::Gpt2}};
  } else if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    c.pre.steps = {{Kind::Split, false, SplitPattern::Llama3}};
    c.ignore_merges = true;   // Llama-3's tokenizer.json sets model.ignore_merges
  } else if (pre == "qwen2") {
    c.pre.steps = {{Kind::Split, false, SplitPattern::Qwen2}};
    c.normalizer.steps = {{NormalizeStep::Kind::Nfc}};  // Qwen2's tokenizer.json has an NFC normalizer
  } else {
    fail("GGUF tokenizer.ggml.pre '", pre, "' is not supported (known: gpt-2, smollm, starcoder, refact, llama-bpe, qwen2)");
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeVocab v) {
  if (v.model == "llama") return make_spm_tokenizer(spm_config_from_vocab(v));
  MF_CHECK(v.model == "gpt2", v.source, ": tokenizer.ggml.model '", v.model,
           "' is not supported (gpt2: byte-level BPE; llama: SentencePiece BPE)");
  BpeConfig c;
  c.source = v.source;
  configure_pre(v.pre, c);
  const size_t n = v.tokens.size();
  for (size_t id = 0; id < n; ++id)
    MF_CHECK(unicode::valid_utf8(v.tokens[id]) == v.tokens[id], c.source, ": tokenizer.ggml.tokens[", id,
             "] is not UTF-8 (a byte-level BPE token never is anything else)");
  for (const auto& [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", v.bos_id}, {"tokenizer.ggml.eos_token_id", v.eos_id},
                                {"tokenizer.ggml.padding_token_id", v.pad_id}, {"tokenizer.ggml.unknown_token_id", v.unk_id}})
    MF_CHECK(id >= -1 && id < int64_t(n), c.source, ": ", key, " = ", id, " is outside the vocabulary of ", n, " tokens");
  MF_CHECK(v.token_types.empty() || v.token_types.size() == n, c.source, ": tokenizer.ggml.token_type has ",
           v.token_types.size(), " entries but tokenizer.ggml.tokens has ", n);
  c.merges.reserve(v.merges.size());
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const std::string& m = v.merges[i];
    // A token never starts with ' ' in byte-level form, so the separator is the first space
    // after the first character.
    const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    MF_CHECK(sp != std::string::npos && sp + 1 < m.size(), c.source, ": tokenizer.ggml.merges[", i, "] '", m,
             "' is not 'left right'");
    c.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  for (size_t id = 0; id < v.token_types.size(); ++id) {
    const int32_t t = v.token_types[id];
    if (t == kTypeControl || t == kTypeUserDefined)
      c.added.push_back({v.tokens[id], static_cast<int32_t>(id), t == kTypeControl});
  }
  c.tokens = std::move(v.tokens);
  c.bos_id = v.bos_id, c.eos_id = v.eos_id, c.pad_id = v.pad_id, c.unk_id = v.unk_id;
  c.add_bos = v.add_bos;
  return make_bpe_tokenizer(std::move(c));
}

std::string bpe_vocab_to_tokenizer_json(const BpeVocab& v) {
  if (v.model == "llama") return spm_vocab_to_tokenizer_json(v);
  using nlohmann::json;
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                           {"use_regex", true}};
  json pre;
  if (v.pre == "gpt-2" || v.pre == "gpt2" || v.pre == "default" || v.pre.empty()) {
    pre = byte_level;
  } else if (v.pre == "smollm" || v.pre == "starcoder" || v.pre == "refact") {
    pre = {{"type", "Sequence"},
           {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level})}};
  } else {
    fail("tokenizer.json export: the '", v.pre, "' pre-tokenizer is not supported yet (gpt-2, smollm, starcoder, refact)");
  }
  json added = json::array();
  for (size_t id = 0; id < v.token_types.size(); ++id) {
    const int32_t t = v.token_types[id];
    if (t != kTypeControl && t != kTypeUserDefined) continue;
    added.push_back({{"id", id}, {"content", v.tokens[id]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", t == kTypeControl}});
  }
  json vocab = json::object();
  for (size_t id = 0; id < v.tokens.size(); ++id) vocab[v.tokens[id]] = id;
  const json model = {{"type", "BPE"},        {"dropout", nullptr}, {"unk_token", nullptr},
                      {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                      {"fuse_unk", false},    {"byte_fallback", false}, {"vocab", vocab},
                      {"merges", v.merges}};
  const json root = {{"version", "1.0"},   {"truncation", nullptr}, {"padding", nullptr},
                     {"added_tokens", added}, {"normalizer", nullptr}, {"pre_tokenizer", pre},
                     {"post_processor", nullptr},
                     {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                                  {"use_regex", true}}},
                     {"model", model}};
  return root.dump();
}

}  // namespace mf
