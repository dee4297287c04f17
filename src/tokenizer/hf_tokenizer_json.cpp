// HF tokenizer.json (+ tokenizer_config.json) -> BPE tokenizer.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/hf_json_parts.h"
#include "tokenizer/regex_split.h"

namespace mf {
namespace {

using namespace hf_json;

SplitBehavior split_behavior(const std::string& name, const std::string& where) {
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail(where, ": Split behavior '", name, "' is not one of Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous");
}

void read_pre_tokenizer(const json& j, const std::string& where, BpeConfig& c, bool& byte_level, int depth = 0) {
  if (j.is_null()) return;
  check_nesting(depth, where);
  using Kind = PreTokenizeStep::Kind;
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    for (const json& p : array_member(j, "pretokenizers")) read_pre_tokenizer(p, where, c, byte_level, depth + 1);
  } else if (t == "ByteLevel") {
    byte_level = true;
    c.pre.add_prefix_space = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) c.pre.steps.push_back({Kind::Split, false, SplitPattern::Gpt2});
  } else if (t == "Digits") {
    c.pre.steps.push_back({Kind::Digits, j.value("individual_digits", false), SplitPattern::Gpt2});
  } else if (t == "Split") {
    MF_CHECK(j.contains("pattern") && j["pattern"].is_object(), where, ": Split pre-tokenizer needs a pattern");
    const json& pattern = j["pattern"];
    std::string regex;
    if (pattern.contains("Regex") && pattern["Regex"].is_string())
      regex = pattern["Regex"].get<std::string>();
    else if (pattern.contains("String") && pattern["String"].is_string())
      regex = regex_literal(pattern["String"].get<std::string>());
    else
      fail(where, ": Split pattern ", pattern.dump(), " is neither {\"Regex\": ...} nor {\"String\": ...}");
    MF_CHECK(!j.value("invert", false), where, ": Split with invert: true is not supported");
    const SplitBehavior behavior = split_behavior(j.value("behavior", "Isolated"), where);
    const auto known = known_split_pattern(regex);
    if (known && behavior == SplitBehavior::Isolated) {
      c.pre.steps.push_back({Kind::Split, false, *known});
    } else {
      PreTokenizeStep step{Kind::Regex, false, SplitPattern::Gpt2};
      try {
        step.regex = std::make_shared<const RegexSplitter>(regex);
      } catch (const Error& e) {
        fail(where, ": ", e.what());
      }
      step.behavior = behavior;
      c.pre.steps.push_back(std::move(step));
    }
  } else {
    fail(where, ": pre_tokenizer '", t, "' is not supported (ByteLevel, Split, Digits, Sequence)");
  }
}

int32_t id_of(const BpeConfig& c, const std::string& token) {
  for (const AddedToken& t : c.added)
    if (t.content == token) return t.id;
  for (size_t i = 0; i < c.tokens.size(); ++i)
    if (c.tokens[i] == token) return static_cast<int32_t>(i);
  return -1;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  const json root = read_json_file(path);
  if (is_sentencepiece_style(root)) return load_spm_tokenizer_json(root, path);
  BpeConfig c;
  SpecialIds ids;
  c.source = path;
  try {
    MF_CHECK(root.is_object() && root.contains("model"), path, ": no \"model\"");
    const json& model = root["model"];
    const std::string model_type = model.value("type", "BPE");
    MF_CHECK(model_type == "BPE", path, ": model.type '", model_type, "' is not supported (only BPE)");
    MF_CHECK(!model.value("byte_fallback", false), path,
             ": model.byte_fallback (SentencePiece-style BPE) is not supported");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      MF_CHECK(!model.contains(key) || model[key].is_null() || model[key].get<std::string>().empty(), path,
               ": model.", key, " is not supported");
    MF_CHECK(model.contains("vocab") && model["vocab"].is_object(), path, ": model.vocab missing");
    c.ignore_merges = model.value("ignore_merges", false);

    size_t n = 0;
    for (const auto& [tok, id] : model["vocab"].items()) {
      MF_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (int64_t(1) << 31), path,
               ": model.vocab['", tok, "'] is not a valid id");
      n = std::max(n, static_cast<size_t>(id.get<int64_t>()) + 1);
    }
    const json added = root.value("added_tokens", json::array());
    for (const json& a : added) {
      MF_CHECK(a.contains("id") && a["id"].is_number_integer() && a["id"].get<int64_t>() >= 0 &&
                   a["id"].get<int64_t>() < (int64_t(1) << 31) && a.contains("content") && a["content"].is_string(),
               path, ": malformed added_tokens entry ", a.dump());
      n = std::max(n, static_cast<size_t>(a["id"].get<int64_t>()) + 1);
    }
    MF_CHECK(n <= (size_t(1) << 24), path, ": vocabulary ids up to ", n, " are implausibly large");
    c.tokens.assign(n, std::string());
    std::vector<bool> filled(n, false);
    for (const auto& [tok, id] : model["vocab"].items()) {
      c.tokens[id.get<size_t>()] = tok;
      filled[id.get<size_t>()] = true;
    }
    for (const json& a : added) {
      const auto id = a["id"].get<int32_t>();
      AddedToken t;
      t.content = a["content"].get<std::string>();
      t.id = id;
      t.special = a.value("special", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
      if (!filled[id]) {
        c.tokens[id] = t.content;
        filled[id] = true;
      }
      c.added.push_back(std::move(t));
    }
    for (size_t i = 0; i < n; ++i) MF_CHECK(filled[i], path, ": token id ", i, " is missing from the vocabulary");

    const json merges = model.value("merges", json::array());
    c.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        MF_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, path, ": model.merges[", i,
                 "] '", s, "' is not 'left right'");
        c.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else {
        MF_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), path, ": model.merges[",
                 i, "] is neither \"a b\" nor [\"a\", \"b\"]");
        c.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      }
    }
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      const std::string unk = model["unk_token"].get<std::string>();
      c.unk_id = c.missing_byte_id = id_of(c, unk);
      MF_CHECK(c.unk_id >= 0, path, ": model.unk_token '", unk, "' is not in the vocabulary");
      c.fuse_unk = model.value("fuse_unk", false);
    }

    read_normalizer(member_or_null(root, "normalizer"), path + ": normalizer", c.normalizer);
    bool byte_level = false;
    read_pre_tokenizer(member_or_null(root, "pre_tokenizer"), path + ": pre_tokenizer", c, byte_level);
    MF_CHECK(byte_level, path, ": pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
    read_post_processor(member_or_null(root, "post_processor"), path + ": post_processor", ids);
  } catch (const json::exception& e) {
    fail(path, ": unexpected structure: ", e.what());
  }

  ids.unk = c.unk_id;
  read_tokenizer_config(path, [&](const std::string& name) { return id_of(c, name); }, ids);
  c.bos_id = ids.bos, c.eos_id = ids.eos, c.pad_id = ids.pad, c.unk_id = ids.unk;
  c.add_bos = ids.add_bos, c.add_eos = ids.add_eos;
  // Without a config, recognise the usual end-of-text names.
  if (c.eos_id < 0)
    for (const char* name : {"<|endoftext|>", "</s>", "<|end_of_text|>"})
      if ((c.eos_id = id_of(c, name)) >= 0) break;
  return make_bpe_tokenizer(std::move(c));
}

}  // namespace mf
