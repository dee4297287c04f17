#include "tokenizer/hf_json_parts.h"

#include <filesystem>

#include "core/error.h"
#include "io/json_file.h"
#include "tokenizer/regex_split.h"

namespace mf::hf_json {

void check_nesting(int depth, const std::string& where) {
  MF_CHECK(depth <= kMaxSequenceNesting, where, ": Sequence nested deeper than ", kMaxSequenceNesting, " levels");
}

const json& array_member(const json& j, const char* key) {
  static const json kEmpty = json::array();
  const auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : kEmpty;
}

const json& member_or_null(const json& j, const char* key) {
  static const json kNull;
  const auto it = j.find(key);
  return it != j.end() ? *it : kNull;
}

std::string type_of(const json& j, const std::string& where) {
  MF_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), where, ": missing \"type\"");
  return j["type"].get<std::string>();
}

int32_t token_id(const json& j, const std::string& what) {
  MF_CHECK(j.is_number_integer() && j.get<int64_t>() >= 0 && j.get<int64_t>() < (int64_t(1) << 31), what, " = ",
           j.dump(), " is not a token id");
  return j.get<int32_t>();
}

void read_normalizer(const json& j, const std::string& where, Normalizer& n, int depth) {
  if (j.is_null()) return;
  check_nesting(depth, where);
  using Kind = NormalizeStep::Kind;
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    for (const json& s : array_member(j, "normalizers")) read_normalizer(s, where, n, depth + 1);
  } else if (t == "NFC") {
    n.steps.push_back({Kind::Nfc});
  } else if (t == "Lowercase") {
    n.steps.push_back({Kind::Lowercase});
  } else if (t == "Strip") {
    NormalizeStep s{Kind::Strip};
    s.left = j.value("strip_left", true);
    s.right = j.value("strip_right", true);
    n.steps.push_back(std::move(s));
  } else if (t == "Prepend") {
    MF_CHECK(j.contains("prepend") && j["prepend"].is_string(), where, ": Prepend needs a \"prepend\" string");
    NormalizeStep s{Kind::Prepend};
    s.content = j["prepend"].get<std::string>();
    n.steps.push_back(std::move(s));
  } else if (t == "Replace") {
    MF_CHECK(j.contains("content") && j["content"].is_string(), where, ": Replace needs a \"content\" string");
    MF_CHECK(j.contains("pattern") && j["pattern"].is_object(), where, ": Replace needs a pattern");
    NormalizeStep s{Kind::Replace};
    s.content = j["content"].get<std::string>();
    const json& p = j["pattern"];
    if (p.contains("String") && p["String"].is_string()) {
      s.pattern = p["String"].get<std::string>();
    } else if (p.contains("Regex") && p["Regex"].is_string()) {
      try {
        s.regex = std::make_shared<const RegexSplitter>(p["Regex"].get<std::string>());
      } catch (const Error& e) {
        fail(where, ": Replace: ", e.what());
      }
    } else {
      fail(where, ": Replace pattern ", p.dump(), " is neither {\"String\": ...} nor {\"Regex\": ...}");
    }
    n.steps.push_back(std::move(s));
  } else if (t == "NFKC" || t == "NFKD" || t == "NFD") {
    fail(where, ": normalizer '", t, "' is not supported: moeforge's Unicode tables hold canonical compositions "
         "only (NFC); the compatibility and decomposed forms would need the full decomposition data");
  } else if (t == "Precompiled") {
    fail(where, ": normalizer 'Precompiled' (a SentencePiece character map such as nmt_nfkc) is not supported; "
         "models trained with normalization_rule_name=identity (Llama-2, Mistral, TinyLlama) need none");
  } else {
    fail(where, ": normalizer '", t, "' is not supported (NFC, Lowercase, Strip, Replace, Prepend, Sequence)");
  }
}

std::vector<AddedTokenEntry> read_added_tokens(const json& root, const std::string& path) {
  std::vector<AddedTokenEntry> out;
  for (const json& a : array_member(root, "added_tokens")) {
    MF_CHECK(a.is_object() && a.contains("id") && a.contains("content") && a["content"].is_string(), path,
             ": malformed added_tokens entry ", a.dump());
    AddedTokenEntry e;
    e.token.id = token_id(a["id"], path + ": added_tokens[].id");
    e.token.content = a["content"].get<std::string>();
    e.token.special = a.value("special", false);
    e.token.lstrip = a.value("lstrip", false);
    e.token.rstrip = a.value("rstrip", false);
    e.token.single_word = a.value("single_word", false);
    e.normalized = a.value("normalized", !e.token.special);
    out.push_back(std::move(e));
  }
  return out;
}

void read_post_processor(const json& j, const std::string& where, SpecialIds& ids, int depth) {
  if (j.is_null()) return;
  check_nesting(depth, where);
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    for (const json& p : array_member(j, "processors")) read_post_processor(p, where, ids, depth + 1);
  } else if (t == "TemplateProcessing") {
    const json single = j.value("single", json::array());
    auto special_id = [&](const json& piece) -> int32_t {
      const std::string name = piece["SpecialToken"]["id"].get<std::string>();
      const json& specials = j.value("special_tokens", json::object());
      MF_CHECK(specials.contains(name) && !specials[name]["ids"].empty(), where,
               ": TemplateProcessing names special token '", name, "' without ids");
      return token_id(specials[name]["ids"][0], where + ": special token '" + name + "'");
    };
    if (!single.empty() && single.front().contains("SpecialToken")) {
      ids.add_bos = true;
      ids.bos = special_id(single.front());
    }
    if (single.size() > 1 && single.back().contains("SpecialToken")) {
      ids.add_eos = true;
      ids.eos = special_id(single.back());
    }
  } else if (t != "ByteLevel") {
    fail(where, ": post_processor '", t, "' is not supported (TemplateProcessing, ByteLevel)");
  }
}

namespace {

// tokenizer_config.json names tokens as a string or as {"content": ...}.
std::optional<std::string> token_name(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

// j["type"] when it is a string, else "" (never throws: used before the structure is checked).
std::string type_or_empty(const json& j) {
  if (!j.is_object()) return "";
  const auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool has_byte_level(const json& pre, int depth) {
  if (!pre.is_object() || depth > kMaxSequenceNesting) return false;
  const std::string t = type_or_empty(pre);
  if (t == "ByteLevel") return true;
  if (t == "Sequence")
    for (const json& p : array_member(pre, "pretokenizers"))
      if (has_byte_level(p, depth + 1)) return true;
  return false;
}

// A Metaspace step or a "▁" string anywhere in j; bounded depth (a hostile file nests deeply).
bool mentions_spm_space(const json& j, int depth) {
  if (depth > kMaxSequenceNesting * 4) return false;
  if (j.is_string()) return j.get_ref<const std::string&>().find("\xE2\x96\x81") != std::string::npos;
  if (type_or_empty(j) == "Metaspace") return true;
  if (j.is_object() || j.is_array())
    for (const json& x : j)
      if (mentions_spm_space(x, depth + 1)) return true;
  return false;
}

}  // namespace

void read_tokenizer_config(const std::string& tokenizer_json_path,
                           const std::function<int32_t(const std::string&)>& id_of, SpecialIds& ids) {
  const auto path = (std::filesystem::path(tokenizer_json_path).parent_path() / "tokenizer_config.json").string();
  if (!std::filesystem::exists(path)) return;
  const json cfg = read_json_file(path);
  auto set = [&](const char* key, int32_t& id) {
    if (auto name = token_name(cfg, key)) {
      id = id_of(*name);
      MF_CHECK(id >= 0, path, ": ", key, " '", *name, "' is not in the vocabulary");
    }
  };
  set("bos_token", ids.bos);
  set("eos_token", ids.eos);
  set("pad_token", ids.pad);
  set("unk_token", ids.unk);
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) ids.add_bos = cfg["add_bos_token"].get<bool>();
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) ids.add_eos = cfg["add_eos_token"].get<bool>();
}

bool is_sentencepiece_style(const json& root) {
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) return false;
  const json& model = root["model"];
  const std::string type = model.contains("type") ? type_or_empty(model) : "BPE";
  if (type == "Unigram") return true;
  if (type != "BPE") return false;
  if (model.contains("byte_fallback") && model["byte_fallback"].is_boolean() && model["byte_fallback"].get<bool>())
    return true;
  if (has_byte_level(member_or_null(root, "pre_tokenizer"), 0)) return false;
  // No byte-level step: SentencePiece-style when the text's spaces become "▁" somewhere.
  for (const char* key : {"normalizer", "pre_tokenizer", "decoder"})
    if (mentions_spm_space(member_or_null(root, key), 0)) return true;
  return false;
}

}  // namespace mf::hf_json
