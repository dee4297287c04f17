// HF tokenizer.json (+ tokenizer_config.json) -> BPE tokenizer.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/bpe_tokenizer.h"

namespace mf {
namespace {

using json = nlohmann::json;

// Sequences inside Sequences: real tokenizers nest one level; a file nesting thousands is refused
// before the recursion below could exhaust the stack.
constexpr int kMaxSequenceNesting = 16;

void check_nesting(int depth, const std::string& where) {
  MF_CHECK(depth <= kMaxSequenceNesting, where, ": Sequence nested deeper than ", kMaxSequenceNesting, " levels");
}

// j[key] when it is an array, else an empty array; read in place (no copy of the subtree).
const json& array_member(const json& j, const char* key) {
  static const json kEmpty = json::array();
  const auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : kEmpty;
}

// j[key] in place, or null when absent.
const json& member_or_null(const json& j, const char* key) {
  static const json kNull;
  const auto it = j.find(key);
  return it != j.end() ? *it : kNull;
}

std::string type_of(const json& j, const std::string& where) {
  MF_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), where, ": missing \"type\"");
  return j["type"].get<std::string>();
}

void read_normalizer(const json& j, const std::string& where, BpeConfig& c, int depth = 0) {
  if (j.is_null()) return;
  check_nesting(depth, where);
  const std::string t = type_of(j, where);
  if (t == "NFC") {
    c.nfc = true;
  } else if (t == "Sequence") {
    for (const json& n : array_member(j, "normalizers")) read_normalizer(n, where, c, depth + 1);
  } else {
    fail(where, ": normalizer '", t, "' is not supported (only NFC)");
  }
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
    MF_CHECK(j.contains("pattern") && j["pattern"].contains("Regex"), where,
             ": Split pre-tokenizer needs a {\"Regex\": ...} pattern");
    const std::string behavior = j.value("behavior", "Isolated");
    MF_CHECK(behavior == "Isolated" && !j.value("invert", false), where, ": Split behavior '", behavior,
             "' (invert ", j.value("invert", false), ") is not supported (only Isolated)");
    SplitPattern p;
    try {
      p = split_pattern_from_regex(j["pattern"]["Regex"].get<std::string>());
    } catch (const Error& e) {
      fail(where, ": ", e.what());
    }
    c.pre.steps.push_back({Kind::Split, false, p});
  } else {
    fail(where, ": pre_tokenizer '", t, "' is not supported (ByteLevel, Split, Digits, Sequence)");
  }
}

void read_post_processor(const json& j, const std::string& where, BpeConfig& c, int depth = 0) {
  if (j.is_null()) return;
  check_nesting(depth, where);
  const std::string t = type_of(j, where);
  if (t == "Sequence") {
    for (const json& p : array_member(j, "processors")) read_post_processor(p, where, c, depth + 1);
  } else if (t == "TemplateProcessing") {
    const json single = j.value("single", json::array());
    auto special_id = [&](const json& piece) -> int32_t {
      const std::string name = piece["SpecialToken"]["id"].get<std::string>();
      const json& specials = j.value("special_tokens", json::object());
      MF_CHECK(specials.contains(name) && !specials[name]["ids"].empty(), where,
               ": TemplateProcessing names special token '", name, "' without ids");
      const json& id = specials[name]["ids"][0];
      MF_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (int64_t(1) << 31), where,
               ": special token '", name, "' has id ", id.dump(), ", not a token id");
      return id.get<int32_t>();
    };
    if (!single.empty() && single.front().contains("SpecialToken")) {
      c.add_bos = true;
      c.bos_id = special_id(single.front());
    }
    if (single.size() > 1 && single.back().contains("SpecialToken")) {
      c.add_eos = true;
      c.eos_id = special_id(single.back());
    }
  } else if (t != "ByteLevel") {
    fail(where, ": post_processor '", t, "' is not supported (TemplateProcessing, ByteLevel)");
  }
}

// tokenizer_config.json names tokens as a string or as {"content": ...}.
std::optional<std::string> token_name(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

int32_t id_of(const BpeConfig& c, const std::string& token) {
  for (const AddedToken& t : c.added)
    if (t.content == token) return t.id;
  for (size_t i = 0; i < c.tokens.size(); ++i)
    if (c.tokens[i] == token) return static_cast<int32_t>(i);
  return -1;
}

void read_tokenizer_config(const std::string& path, BpeConfig& c) {
  const json cfg = read_json_file(path);
  auto set = [&](const char* key, int32_t& id) {
    if (auto name = token_name(cfg, key)) {
      id = id_of(c, *name);
      MF_CHECK(id >= 0, path, ": ", key, " '", *name, "' is not in the vocabulary");
    }
  };
  set("bos_token", c.bos_id);
  set("eos_token", c.eos_id);
  set("pad_token", c.pad_id);
  set("unk_token", c.unk_id);
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) c.add_bos = cfg["add_bos_token"].get<bool>();
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) c.add_eos = cfg["add_eos_token"].get<bool>();
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  const json root = read_json_file(path);
  BpeConfig c;
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

    read_normalizer(member_or_null(root, "normalizer"), path + ": normalizer", c);
    bool byte_level = false;
    read_pre_tokenizer(member_or_null(root, "pre_tokenizer"), path + ": pre_tokenizer", c, byte_level);
    MF_CHECK(byte_level, path, ": pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
    read_post_processor(member_or_null(root, "post_processor"), path + ": post_processor", c);
  } catch (const json::exception& e) {
    fail(path, ": unexpected structure: ", e.what());
  }

  const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) read_tokenizer_config(config_path.string(), c);
  // Without a config, recognise the usual end-of-text names.
  if (c.eos_id < 0)
    for (const char* name : {"<|endoftext|>", "</s>", "<|end_of_text|>"})
      if ((c.eos_id = id_of(c, name)) >= 0) break;
  return make_bpe_tokenizer(std::move(c));
}

}  // namespace mf
