// Char-level tokenizer: one id per Unicode character seen in a corpus, plus four specials.
#include <algorithm>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace mf {
namespace {

const std::vector<std::string> kDefaultSpecials = {"<pad>", "<bos>", "<eos>", "<unk>"};

class CharTokenizer final : public Tokenizer {
 public:
  CharTokenizer(std::vector<std::string> specials, std::vector<std::string> chars, const std::string& source)
      : specials_(std::move(specials)) {
    kind = "char";
    MF_CHECK(specials_ == kDefaultSpecials, source, ": specials must be <pad>, <bos>, <eos>, <unk>");
    pad_id = 0, bos_id = 1, eos_id = 2, unk_id = 3;
    pieces_ = specials_;
    for (std::string& c : chars) {
      MF_CHECK(!c.empty() && unicode::decode_utf8(c, 0).valid && unicode::decode_utf8(c, 0).length == c.size(),
               source, ": vocabulary entry ", pieces_.size(), " is not exactly one UTF-8 character");
      pieces_.push_back(std::move(c));
    }
    for (size_t i = specials_.size(); i < pieces_.size(); ++i) {
      const bool inserted = char_ids_.emplace(pieces_[i], static_cast<int32_t>(i)).second;
      MF_CHECK(inserted, source, ": character '", pieces_[i], "' appears twice");
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool parse_special) const override {
    std::vector<int32_t> out;
    for (size_t pos = 0; pos < text.size();) {
      if (parse_special && text[pos] == '<') {
        auto it = std::find_if(specials_.begin(), specials_.end(),
                               [&](const std::string& s) { return text.compare(pos, s.size(), s) == 0; });
        if (it != specials_.end()) {
          out.push_back(static_cast<int32_t>(it - specials_.begin()));
          pos += it->size();
          continue;
        }
      }
      const auto u = unicode::decode_utf8(text, pos);
      auto it = u.valid ? char_ids_.find(std::string(text.substr(pos, u.length))) : char_ids_.end();
      out.push_back(it == char_ids_.end() ? unk_id : it->second);
      pos += u.length;
    }
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    for (int32_t id : ids) {
      check_id(id);
      if (skip_special && is_special(id)) continue;
      out += pieces_[id];
    }
    return out;
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    return pieces_[id];
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    for (size_t i = 0; i < specials_.size(); ++i)
      if (specials_[i] == token) return static_cast<int32_t>(i);
    auto it = char_ids_.find(std::string(token));
    if (it == char_ids_.end()) return std::nullopt;
    return it->second;
  }
  bool is_special(int32_t id) const override {
    check_id(id);
    return id < static_cast<int32_t>(specials_.size());
  }

  nlohmann::json to_json() const {
    return {{"type", "char"},
            {"specials", specials_},
            {"chars", std::vector<std::string>(pieces_.begin() + specials_.size(), pieces_.end())}};
  }

 private:
  void check_id(int32_t id) const {
    MF_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " out of range for a char vocabulary of ",
             vocab_size());
  }

  std::vector<std::string> specials_;
  std::vector<std::string> pieces_;  // id -> text
  std::unordered_map<std::string, int32_t> char_ids_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_char_tokenizer(std::string_view corpus) {
  std::set<char32_t> seen;  // ordered: ids follow code point order
  for (size_t pos = 0; pos < corpus.size();) {
    const auto u = unicode::decode_utf8(corpus, pos);
    if (u.valid) seen.insert(u.cp);  // ill-formed bytes stay out of the vocabulary (-> <unk>)
    pos += u.length;
  }
  std::vector<std::string> chars;
  for (char32_t cp : seen) {
    chars.emplace_back();
    unicode::append_utf8(chars.back(), cp);
  }
  return std::make_unique<CharTokenizer>(kDefaultSpecials, std::move(chars), "corpus");
}

void save_char_tokenizer(const Tokenizer& tok, const std::string& path) {
  const auto* ct = dynamic_cast<const CharTokenizer*>(&tok);
  MF_CHECK(ct, "save_char_tokenizer: tokenizer kind is '", tok.kind, "', not 'char' (", path, ")");
  const std::string text = ct->to_json().dump(1);
  write_file_atomic(path, text.data(), text.size());
}

std::unique_ptr<Tokenizer> load_char_tokenizer(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  MF_CHECK(j.is_object() && j.value("type", "") == "char", path, ": not a char tokenizer (\"type\" != \"char\")");
  MF_CHECK(j.contains("specials") && j["specials"].is_array() && j.contains("chars") && j["chars"].is_array(),
           path, ": needs \"specials\" and \"chars\" arrays");
  std::vector<std::string> specials, chars;
  for (const auto& s : j["specials"]) {
    MF_CHECK(s.is_string(), path, ": \"specials\" holds a non-string");
    specials.push_back(s.get<std::string>());
  }
  for (const auto& c : j["chars"]) {
    MF_CHECK(c.is_string(), path, ": \"chars\" holds a non-string");
    chars.push_back(c.get<std::string>());
  }
  return std::make_unique<CharTokenizer>(std::move(specials), std::move(chars), path);
}

}  // namespace mf
