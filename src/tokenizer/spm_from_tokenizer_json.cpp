// HF tokenizer.json with a SentencePiece-style model -> SpmConfig: model.type Unigram, or BPE
// with byte_fallback (Llama-2, Mistral, TinyLlama) and the ▁ chain around it: Prepend("▁") +
// Replace(" ", "▁") normalizers or a Metaspace pre-tokenizer; the decoder chain Replace("▁", " ")
// + ByteFallback + Fuse + Strip, or Metaspace. Anything else is refused by name.
#include <unordered_map>

#include "core/error.h"
#include "io/json_file.h"
#include "tokenizer/hf_json_parts.h"
#include "tokenizer/spm_tokenizer.h"

namespace mf {
namespace {

using namespace hf_json;

std::string string_pattern(const json& j, const std::string& where) {
  MF_CHECK(j.contains("pattern") && j["pattern"].is_object(), where, ": Replace needs a pattern");
  const json& p = j["pattern"];
  if (p.contains("String") && p["String"].is_string()) return p["String"].get<std::string>();
  fail(where, ": Replace with pattern ", p.dump(), " is not supported (only {\"String\": ...})");
}

using Prepend = SpmConfig::Metaspace::Prepend;

Prepend prepend_scheme(const json& j, const std::string& where) {
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    const std::string s = j["prepend_scheme"].get<std::string>();
    if (s == "always") return Prepend::Always;
    if (s == "first") return Prepend::First;
    if (s == "never") return Prepend::Never;
    fail(where, ": Metaspace prepend_scheme '", s, "' is not one of always, first, never");
  }
  return j.value("add_prefix_space", true) ? Prepend::Always : Prepend::Never;  // files before prepend_scheme
}

void check_replacement(const json& j, const std::string& where) {
  const std::string r = j.value("replacement", std::string(kSpmSpace));
  MF_CHECK(r == kSpmSpace, where, ": Metaspace replacement '", r, "' is not supported (only \"▁\")");
}

void read_pre_tokenizer(const json& j, const std::string& where, SpmConfig& c, int depth = 0) {
  if (j.is_null()) return;
  check_nesting(depth, where);
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    for (const json& p : array_member(j, "pretokenizers")) read_pre_tokenizer(p, where, c, depth + 1);
  } else if (t == "Metaspace") {
    MF_CHECK(!c.metaspace, where, ": two Metaspace pre-tokenizers");
    check_replacement(j, where);
    c.metaspace = SpmConfig::Metaspace{prepend_scheme(j, where), j.value("split", true)};
  } else {
    fail(where, ": pre_tokenizer '", t, "' is not supported with a SentencePiece-style ",
         c.algorithm == SpmAlgorithm::Unigram ? "Unigram" : "BPE", " model (only Metaspace)");
  }
}

struct DecoderSteps {
  bool replace = false, metaspace = false, byte_fallback = false, strip = false;
  Prepend metaspace_prepend = Prepend::Always;
};

void read_decoder(const json& j, const std::string& where, DecoderSteps& d, int depth = 0) {
  if (j.is_null()) return;
  check_nesting(depth, where);
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    for (const json& s : array_member(j, "decoders")) read_decoder(s, where, d, depth + 1);
  } else if (t == "Replace") {
    const std::string from = string_pattern(j, where);
    MF_CHECK(from == kSpmSpace && j.value("content", "") == " ", where,
             ": decoder Replace('", from, "', '", j.value("content", ""), "') is not supported (only \"▁\" -> \" \")");
    d.replace = true;
  } else if (t == "ByteFallback") {
    d.byte_fallback = true;
  } else if (t == "Fuse") {
    // Joining the tokens' strings: decode() concatenates anyway.
  } else if (t == "Strip") {
    MF_CHECK(j.value("content", "") == " " && j.value("start", 0) == 1 && j.value("stop", 0) == 0, where,
             ": decoder Strip ", j.dump(), " is not supported (only content ' ', start 1, stop 0)");
    d.strip = true;
  } else if (t == "Metaspace") {
    check_replacement(j, where);
    d.metaspace = true;
    d.metaspace_prepend = prepend_scheme(j, where);
  } else {
    fail(where, ": decoder '", t, "' is not supported with a SentencePiece-style model "
         "(Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)");
  }
}

void read_bpe_model(const json& model, const std::string& path, SpmConfig& c, std::vector<bool>& in_vocab) {
  c.algorithm = SpmAlgorithm::BpeRanks;
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    MF_CHECK(!model.contains(key) || model[key].is_null() ||
                 (model[key].is_string() && model[key].get<std::string>().empty()),
             path, ": model.", key, " is not supported");
  MF_CHECK(!model.contains("dropout") || model["dropout"].is_null() ||
               (model["dropout"].is_number() && model["dropout"].get<double>() == 0.0),
           path, ": model.dropout (BPE dropout) is not supported: encoding would be random");
  MF_CHECK(!model.value("ignore_merges", false), path,
           ": model.ignore_merges is not supported with a SentencePiece-style BPE");
  MF_CHECK(model.contains("vocab") && model["vocab"].is_object(), path, ": model.vocab missing");
  size_t n = 0;
  for (const auto& [piece, id] : model["vocab"].items())
    n = std::max(n, size_t(token_id(id, path + ": model.vocab['" + piece + "']")) + 1);
  MF_CHECK(n <= (size_t(1) << 24), path, ": vocabulary ids up to ", n, " are implausibly large");
  c.pieces.assign(n, std::string());
  in_vocab.assign(n, false);
  for (const auto& [piece, id] : model["vocab"].items()) {
    c.pieces[id.get<size_t>()] = piece;
    in_vocab[id.get<size_t>()] = true;
  }
  const json& merges = array_member(model, "merges");
  c.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      MF_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, path, ": model.merges[", i, "] '",
               s, "' is not 'left right'");
      c.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      MF_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), path, ": model.merges[", i,
               "] is neither \"a b\" nor [\"a\", \"b\"]");
      c.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    }
  }
  c.byte_fallback = model.value("byte_fallback", false);
  c.fuse_unk = model.value("fuse_unk", false);
}

void read_unigram_model(const json& model, const std::string& path, SpmConfig& c, std::vector<bool>& in_vocab) {
  c.algorithm = SpmAlgorithm::Unigram;
  const json& vocab = array_member(model, "vocab");
  MF_CHECK(!vocab.empty(), path, ": model.vocab of a Unigram model must be a non-empty [[piece, score], ...] list");
  MF_CHECK(vocab.size() <= (size_t(1) << 24), path, ": ", vocab.size(), " pieces are implausibly many");
  c.pieces.reserve(vocab.size());
  c.scores.reserve(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    const json& e = vocab[i];
    MF_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_number(), path, ": model.vocab[", i,
             "] is not [piece, score]");
    c.pieces.push_back(e[0].get<std::string>());
    c.scores.push_back(e[1].get<double>());
  }
  in_vocab.assign(c.pieces.size(), true);
  if (model.contains("unk_id") && !model["unk_id"].is_null()) {
    c.unk_id = token_id(model["unk_id"], path + ": model.unk_id");
    MF_CHECK(size_t(c.unk_id) < c.pieces.size(), path, ": model.unk_id ", c.unk_id, " is outside the vocabulary");
  }
  c.byte_fallback = model.value("byte_fallback", false);
  c.fuse_unk = true;  // HF's Unigram always fuses unknown characters
}

SpmConfig spm_config_from_json(const json& root, const std::string& path) {
  SpmConfig c;
  c.source = path;
  try {
    MF_CHECK(root.is_object() && root.contains("model") && root["model"].is_object(), path, ": no \"model\"");
    const json& model = root["model"];
    const std::string type = model.value("type", "BPE");
    std::vector<bool> in_vocab;
    if (type == "BPE")
      read_bpe_model(model, path, c, in_vocab);
    else if (type == "Unigram")
      read_unigram_model(model, path, c, in_vocab);
    else
      fail(path, ": model.type '", type, "' is not supported (BPE, Unigram)");

    const std::vector<AddedTokenEntry> added = read_added_tokens(root, path);
    for (const AddedTokenEntry& a : added) {
      const auto id = static_cast<size_t>(a.token.id);
      MF_CHECK(id < (size_t(1) << 24), path, ": added token id ", id, " is implausibly large");
      if (id >= c.pieces.size()) {
        c.pieces.resize(id + 1);
        in_vocab.resize(id + 1, false);
        if (!c.scores.empty()) c.scores.resize(id + 1, 0.0);
      }
      if (!in_vocab[id] && c.pieces[id].empty()) c.pieces[id] = a.token.content;
      c.added.push_back(a.token);
    }
    for (size_t i = 0; i < c.pieces.size(); ++i)
      MF_CHECK(!c.pieces[i].empty(), path, ": token id ", i, " is missing from the vocabulary");
    c.matchable = in_vocab;  // HF's model knows model.vocab only; added tokens are matched before it

    // Types, for a GGUF export and for byte pieces.
    c.types.assign(c.pieces.size(), SpmPieceType::Normal);
    for (size_t i = 0; i < c.pieces.size(); ++i) {
      const std::string& p = c.pieces[i];
      if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>') c.types[i] = SpmPieceType::Byte;
    }
    for (const AddedToken& t : c.added)
      c.types[size_t(t.id)] = t.special ? SpmPieceType::Control : SpmPieceType::UserDefined;

    if (type == "BPE" && model.contains("unk_token") && model["unk_token"].is_string()) {
      const std::string unk = model["unk_token"].get<std::string>();
      for (size_t i = 0; i < c.pieces.size() && c.unk_id < 0; ++i)
        if (c.pieces[i] == unk) c.unk_id = static_cast<int32_t>(i);
      MF_CHECK(c.unk_id >= 0, path, ": model.unk_token '", unk, "' is not in the vocabulary");
    }
    if (c.unk_id >= 0) c.types[size_t(c.unk_id)] = SpmPieceType::Unknown;

    read_normalizer(member_or_null(root, "normalizer"), path + ": normalizer", c.normalizer);
    read_pre_tokenizer(member_or_null(root, "pre_tokenizer"), path + ": pre_tokenizer", c);
    // HF finds a normalized added token in the normalized text; moeforge matches added tokens in
    // the text as given, which is the same only when there is no normalizer.
    if (!c.normalizer.empty())
      for (const AddedTokenEntry& a : added)
        MF_CHECK(!a.normalized, path, ": added token '", a.token.content,
                 "' has normalized: true, which HF matches after the normalizer; moeforge supports that "
                 "only without a normalizer");

    DecoderSteps d;
    const json& decoder = member_or_null(root, "decoder");
    MF_CHECK(!decoder.is_null(), path, ": decoder is null (HF would join the tokens with spaces); "
             "a SentencePiece-style tokenizer needs a Replace/Metaspace decoder");
    read_decoder(decoder, path + ": decoder", d);
    c.decode_spaces = d.replace || d.metaspace;
    c.decode_bytes = d.byte_fallback;
    c.opening = d.strip ? SpmConfig::Opening::StripSpace
                : d.metaspace && d.metaspace_prepend != Prepend::Never ? SpmConfig::Opening::MetaspaceFirst
                                                                        : SpmConfig::Opening::None;

    SpecialIds ids;
    ids.unk = c.unk_id;
    read_post_processor(member_or_null(root, "post_processor"), path + ": post_processor", ids);
    std::unordered_map<std::string, int32_t> by_text;
    for (size_t i = c.pieces.size(); i-- > 0;) by_text[c.pieces[i]] = static_cast<int32_t>(i);  // first id wins
    auto id_of = [&](const std::string& name) {
      auto it = by_text.find(name);
      return it == by_text.end() ? -1 : it->second;
    };
    read_tokenizer_config(path, id_of, ids);
    if (ids.eos < 0) ids.eos = id_of("</s>");
    c.bos_id = ids.bos, c.eos_id = ids.eos, c.pad_id = ids.pad, c.unk_id = ids.unk;
    c.add_bos = ids.add_bos, c.add_eos = ids.add_eos;
  } catch (const json::exception& e) {
    fail(path, ": unexpected structure: ", e.what());
  }
  return c;
}

}  // namespace

std::unique_ptr<Tokenizer> hf_json::load_spm_tokenizer_json(const json& root, const std::string& path) {
  return make_spm_tokenizer(spm_config_from_json(root, path));
}

SpmConfig spm_config_from_tokenizer_json(const std::string& path) {
  return spm_config_from_json(read_json_file(path), path);
}

}  // namespace mf
