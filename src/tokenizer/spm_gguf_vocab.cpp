// GGUF "llama" vocabularies (tokenizer.ggml.model = llama) <-> SpmConfig. llama.cpp's spm path:
// every piece may be formed by merging (highest score first), byte pieces for characters with
// none, a "▁" before the text and after every special token when add_space_prefix is set.
#include <algorithm>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/unicode.h"

namespace mf {

SpmConfig spm_config_from_vocab(const BpeVocab& v) {
  SpmConfig c;
  c.source = v.source;
  c.algorithm = SpmAlgorithm::BpeScores;
  const size_t n = v.tokens.size();
  MF_CHECK(n > 0, v.source, ": tokenizer.ggml.tokens is empty");
  MF_CHECK(v.scores.empty() || v.scores.size() == n, v.source, ": tokenizer.ggml.scores has ", v.scores.size(),
           " entries but tokenizer.ggml.tokens has ", n);
  MF_CHECK(v.token_types.empty() || v.token_types.size() == n, v.source, ": tokenizer.ggml.token_type has ",
           v.token_types.size(), " entries but tokenizer.ggml.tokens has ", n);
  for (const auto& [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", v.bos_id}, {"tokenizer.ggml.eos_token_id", v.eos_id},
                                {"tokenizer.ggml.padding_token_id", v.pad_id}, {"tokenizer.ggml.unknown_token_id", v.unk_id}})
    MF_CHECK(id >= -1 && id < int64_t(n), v.source, ": ", key, " = ", id, " is outside the vocabulary of ", n, " tokens");
  c.pieces = v.tokens;
  c.scores.assign(n, 0.0);
  for (size_t i = 0; i < v.scores.size(); ++i) c.scores[i] = v.scores[i];
  c.types.assign(n, SpmPieceType::Normal);
  for (size_t i = 0; i < v.token_types.size(); ++i) {
    const int32_t t = v.token_types[i];
    MF_CHECK(t >= 1 && t <= 6, v.source, ": tokenizer.ggml.token_type[", i, "] = ", t, " is not a token type (1..6)");
    c.types[i] = static_cast<SpmPieceType>(t);
  }
  for (size_t i = 0; i < n; ++i) {
    MF_CHECK(!c.pieces[i].empty(), v.source, ": tokenizer.ggml.tokens[", i, "] is empty");
    // llama.cpp's special tokens: control and unknown ones only when parsing specials,
    // user-defined ones always, each kept whole.
    const SpmPieceType t = c.types[i];
    if (t == SpmPieceType::Control || t == SpmPieceType::Unknown || t == SpmPieceType::UserDefined)
      c.added.push_back({c.pieces[i], static_cast<int32_t>(i), t != SpmPieceType::UserDefined});
  }
  c.byte_fallback = true;
  if (v.add_space_prefix) c.normalizer.steps.push_back(NormalizeStep::prepend(std::string(kSpmSpace)));
  c.normalizer.steps.push_back(NormalizeStep::replace(" ", std::string(kSpmSpace)));
  c.decode_spaces = c.decode_bytes = true;
  c.opening = v.add_space_prefix ? SpmConfig::Opening::StripSpace : SpmConfig::Opening::None;
  c.bos_id = v.bos_id, c.eos_id = v.eos_id, c.pad_id = v.pad_id, c.unk_id = v.unk_id;
  c.add_bos = v.add_bos;
  return c;
}

BpeVocab spm_vocab_for_gguf(const SpmConfig& c) {
  MF_CHECK(c.algorithm != SpmAlgorithm::Unigram, c.source,
           ": a Unigram tokenizer cannot be written as a GGUF 'llama' vocabulary (llama.cpp's spm path is BPE)");
  MF_CHECK(c.byte_fallback, c.source, ": a SentencePiece BPE without byte_fallback has no GGUF form llama.cpp "
           "tokenizes the same way (it always falls back to bytes)");
  BpeVocab v;
  v.model = "llama";
  v.pre = "default";
  v.source = c.source;
  v.tokens = c.pieces;
  const size_t n = c.pieces.size();
  v.token_types.assign(n, int32_t(SpmPieceType::Normal));
  for (size_t i = 0; i < c.types.size(); ++i) v.token_types[i] = int32_t(c.types[i]);
  if (!c.scores.empty()) {
    v.scores.assign(c.scores.begin(), c.scores.end());
  } else {
    // HF merges by rank; llama.cpp by the merged piece's score. A piece's score is minus the
    // rank of the first merge that makes it; pieces no merge makes score below them all.
    std::unordered_map<std::string, size_t> id_of;
    for (size_t i = n; i-- > 0;) id_of[c.pieces[i]] = i;
    const auto lowest = -static_cast<float>(c.merges.size() + 1);
    v.scores.assign(n, lowest);
    std::vector<bool> made(n, false);
    for (size_t rank = 0; rank < c.merges.size(); ++rank) {
      auto it = id_of.find(c.merges[rank].first + c.merges[rank].second);
      if (it == id_of.end() || made[it->second]) continue;
      made[it->second] = true;
      v.scores[it->second] = -static_cast<float>(rank);
    }
    for (size_t i = 0; i < n; ++i)
      if (v.token_types[i] != int32_t(SpmPieceType::Normal) || unicode::decode_utf8(c.pieces[i], 0).length == c.pieces[i].size())
        v.scores[i] = 0.0f;  // single characters and non-normal pieces: never formed by a merge
  }
  // llama.cpp puts "▁" before the text and after each special token: Llama-2's Prepend
  // normalizer does the same; Metaspace "first" differs after special tokens (docs/tokenizers.md).
  bool prepends = c.metaspace && c.metaspace->prepend != SpmConfig::Metaspace::Prepend::Never;
  for (const NormalizeStep& s : c.normalizer.steps)
    if (s.kind == NormalizeStep::Kind::Prepend && (s.content == kSpmSpace || s.content == " ")) prepends = true;
  v.add_space_prefix = prepends;
  v.bos_id = c.bos_id, v.eos_id = c.eos_id, v.pad_id = c.pad_id, v.unk_id = c.unk_id;
  v.add_bos = c.add_bos;
  return v;
}

std::string spm_vocab_to_tokenizer_json(const BpeVocab& v) {
  using nlohmann::json;
  const SpmConfig c = spm_config_from_vocab(v);  // validates
  const size_t n = c.pieces.size();
  // Merges as transformers' SentencePiece converter derives them: every split of a piece into
  // two pieces, the merged piece's score first (ties: vocabulary order of the halves).
  std::unordered_map<std::string, size_t> id_of;
  for (size_t i = n; i-- > 0;) id_of[c.pieces[i]] = i;
  struct Merge { size_t piece, left, right; };
  std::vector<Merge> merges;
  for (size_t id = 0; id < n; ++id) {
    if (c.types[id] != SpmPieceType::Normal) continue;
    const std::string& p = c.pieces[id];
    std::vector<Merge> local;
    for (size_t cut = unicode::decode_utf8(p, 0).length; cut < p.size(); cut += unicode::decode_utf8(p, cut).length) {
      auto l = id_of.find(p.substr(0, cut)), r = id_of.find(p.substr(cut));
      if (l != id_of.end() && r != id_of.end()) local.push_back({id, l->second, r->second});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return a.left != b.left ? a.left < b.left : a.right < b.right; });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(),
                   [&](const Merge& a, const Merge& b) { return c.scores[a.piece] > c.scores[b.piece]; });
  json merge_list = json::array();
  for (const Merge& m : merges) merge_list.push_back(json::array({c.pieces[m.left], c.pieces[m.right]}));
  json vocab = json::object();
  for (size_t id = 0; id < n; ++id)
    if (!vocab.contains(c.pieces[id])) vocab[c.pieces[id]] = id;
  json added = json::array();
  for (const AddedToken& t : c.added)
    added.push_back({{"id", t.id}, {"content", t.content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", t.special}});
  const std::string space(kSpmSpace);
  json normalizers = json::array();
  if (v.add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", space}});
  normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}});
  json decoders = json::array({{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
                               {{"type", "ByteFallback"}}, {{"type", "Fuse"}}});
  if (v.add_space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  json post = nullptr;
  if (v.add_bos && v.bos_id >= 0) {
    const std::string bos = c.pieces[size_t(v.bos_id)];
    post = {{"type", "TemplateProcessing"},
            {"single", json::array({{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
            {"pair", json::array({{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                  {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
                                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
            {"special_tokens", {{bos, {{"id", bos}, {"ids", json::array({v.bos_id})}, {"tokens", json::array({bos})}}}}}};
  }
  const json model = {{"type", "BPE"}, {"dropout", nullptr},
                      {"unk_token", v.unk_id >= 0 ? json(c.pieces[size_t(v.unk_id)]) : json(nullptr)},
                      {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                      {"fuse_unk", true}, {"byte_fallback", true}, {"ignore_merges", false},
                      {"vocab", vocab}, {"merges", merge_list}};
  const json root = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
                     {"added_tokens", added},
                     {"normalizer", {{"type", "Sequence"}, {"normalizers", normalizers}}},
                     {"pre_tokenizer", nullptr}, {"post_processor", post},
                     {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}}, {"model", model}};
  return root.dump();
}

}  // namespace mf
