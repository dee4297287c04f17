// BPE encoding in HF tokenizers' order: added tokens split out (leftmost, longest), then per
// segment optional NFC, pre-tokenization, the byte map and merges by rank via a priority queue.
// Short words' results are cached under a mutex: encode() is const and may run on many threads.
#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"

namespace mf {
namespace {

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Merge {
  int32_t rank;
  int32_t result;
};

bool is_word_char(char32_t cp) {
  return unicode::is_letter(cp) || unicode::is_number(cp) || cp == '_';
}

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeConfig c) : cfg_(std::move(c)) {
    kind = "bpe";
    bos_id = cfg_.bos_id, eos_id = cfg_.eos_id, pad_id = cfg_.pad_id, unk_id = cfg_.unk_id;
    add_bos = cfg_.add_bos, add_eos = cfg_.add_eos;
    const auto n = static_cast<int32_t>(cfg_.tokens.size());
    MF_CHECK(n > 0, cfg_.source, ": empty BPE vocabulary");
    for (int32_t id : {bos_id, eos_id, pad_id, unk_id, cfg_.missing_byte_id})
      MF_CHECK(id >= -1 && id < n, cfg_.source, ": special token id ", id, " out of range [0, ", n, ")");
    ids_.reserve(cfg_.tokens.size());
    for (int32_t id = 0; id < n; ++id) ids_.emplace(cfg_.tokens[id], id);  // first wins on duplicates

    special_.assign(n, false);
    for (const AddedToken& t : cfg_.added) {
      MF_CHECK(t.id >= 0 && t.id < n, cfg_.source, ": added token '", t.content, "' has id ", t.id,
               " outside the vocabulary of ", n);
      MF_CHECK(!t.content.empty(), cfg_.source, ": added token ", t.id, " is empty");
      special_[t.id] = t.special;
    }
    // Longest first, so the first candidate that matches at a position is the longest.
    std::stable_sort(cfg_.added.begin(), cfg_.added.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
    for (size_t i = 0; i < cfg_.added.size(); ++i)
      added_by_first_byte_[static_cast<uint8_t>(cfg_.added[i].content[0])].push_back(i);

    for (int b = 0; b < 256; ++b) {
      std::string s;
      unicode::append_utf8(s, byte_level::byte_to_char(static_cast<uint8_t>(b)));
      auto it = ids_.find(s);
      byte_ids_[b] = it == ids_.end() ? -1 : it->second;
    }

    merges_.reserve(cfg_.merges.size());
    for (size_t rank = 0; rank < cfg_.merges.size(); ++rank) {
      const auto& [l, r] = cfg_.merges[rank];
      auto li = ids_.find(l), ri = ids_.find(r), mi = ids_.find(l + r);
      MF_CHECK(li != ids_.end() && ri != ids_.end(), cfg_.source, ": merge ", rank, " '", l, " ", r,
               "' uses a token that is not in the vocabulary");
      MF_CHECK(mi != ids_.end(), cfg_.source, ": merge ", rank, " '", l, " ", r, "' produces '", l + r,
               "', which is not in the vocabulary");
      merges_.emplace(pair_key(li->second, ri->second), Merge{static_cast<int32_t>(rank), mi->second});
    }

    bytes_.resize(n);
    for (int32_t id = 0; id < n; ++id) {
      // As HF's ByteLevel decoder: map every char back to its byte, or keep the token's own
      // text when some char is outside the mapping (added tokens such as "\n\n").
      auto b = byte_level::decode(cfg_.tokens[id]);
      bytes_[id] = b ? std::move(*b) : cfg_.tokens[id];
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool parse_special) const override {
    std::vector<int32_t> out;
    size_t seg_begin = 0;
    for (size_t pos = 0; pos < text.size();) {
      const Found f = find_added(text, pos, seg_begin, parse_special);
      if (!f.token) {
        pos = text.size();
        break;
      }
      encode_segment(text.substr(seg_begin, f.begin - seg_begin), out);
      out.push_back(f.token->id);
      seg_begin = pos = f.end;
    }
    encode_segment(text.substr(seg_begin), out);
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    for (int32_t id : ids) {
      check_id(id);
      if (skip_special && special_[id]) continue;
      out += bytes_[id];
    }
    return out;
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    return bytes_[id];
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(cfg_.tokens.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    auto it = ids_.find(std::string(token));
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  bool is_special(int32_t id) const override {
    check_id(id);
    return special_[id];
  }

 private:
  struct Found {
    const AddedToken* token = nullptr;
    size_t begin = 0, end = 0;  // byte range absorbed, including stripped whitespace
  };

  void check_id(int32_t id) const {
    MF_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " out of range for a vocabulary of ",
             vocab_size(), " (", cfg_.source, ")");
  }

  // Leftmost-longest added-token match at or after `pos`; `floor` bounds lstrip absorption.
  Found find_added(std::string_view text, size_t pos, size_t floor, bool parse_special) const {
    if (cfg_.added.empty()) return {};
    for (size_t i = pos; i < text.size(); ++i) {
      for (size_t idx : added_by_first_byte_[static_cast<uint8_t>(text[i])]) {
        const AddedToken& t = cfg_.added[idx];
        if (t.special && !parse_special) continue;
        if (text.compare(i, t.content.size(), t.content) != 0) continue;
        size_t b = i, e = i + t.content.size();
        if (t.single_word && !(stands_alone(text, b, e))) continue;
        if (t.lstrip)
          while (b > floor) {
            const size_t start = char_start_before(text, b);
            const auto u = unicode::decode_utf8(text, start);
            if (!u.valid || !unicode::is_whitespace(u.cp)) break;
            b = start;
          }
        if (t.rstrip)
          while (e < text.size()) {
            const auto u = unicode::decode_utf8(text, e);
            if (!u.valid || !unicode::is_whitespace(u.cp)) break;
            e += u.length;
          }
        return {&t, b, e};
      }
    }
    return {};
  }

  static size_t char_start_before(std::string_view text, size_t pos) {
    size_t s = pos - 1;
    while (s > 0 && pos - s < 4 && (static_cast<uint8_t>(text[s]) & 0xC0) == 0x80) --s;
    const auto u = unicode::decode_utf8(text, s);
    return s + u.length == pos ? s : pos - 1;
  }

  static bool stands_alone(std::string_view text, size_t b, size_t e) {
    if (b > 0) {
      const auto u = unicode::decode_utf8(text, char_start_before(text, b));
      if (u.valid && is_word_char(u.cp)) return false;
    }
    if (e < text.size()) {
      const auto u = unicode::decode_utf8(text, e);
      if (u.valid && is_word_char(u.cp)) return false;
    }
    return true;
  }

  void encode_segment(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::string normalized;
    if (cfg_.nfc) {
      normalized = unicode::nfc(text);
      text = normalized;
    }
    std::string storage;
    std::vector<std::string_view> pieces;
    cfg_.pre.split(text, storage, pieces);
    for (std::string_view piece : pieces) encode_piece(piece, out);
  }

  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    const std::string word = byte_level::encode(piece);
    if (cfg_.ignore_merges) {
      auto it = ids_.find(word);
      if (it != ids_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    constexpr size_t kMaxCachedWord = 64;
    if (piece.size() <= kMaxCachedWord) {
      std::lock_guard lock(cache_mutex_);
      auto it = cache_.find(word);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids = merge(piece);
    out.insert(out.end(), ids.begin(), ids.end());
    if (piece.size() <= kMaxCachedWord) {
      constexpr size_t kMaxCacheEntries = 1 << 16;
      std::lock_guard lock(cache_mutex_);
      if (cache_.size() >= kMaxCacheEntries) cache_.clear();
      cache_.emplace(word, std::move(ids));
    }
  }

  // Applies merges lowest rank first (leftmost among equal ranks), as HF's BPE does, over a
  // linked list of symbols with a priority queue of candidate pairs.
  std::vector<int32_t> merge(std::string_view piece) const {
    struct Symbol {
      int32_t id;
      int32_t prev, next;  // -1 at the ends
      bool alive;
    };
    std::vector<Symbol> sym;
    sym.reserve(piece.size());
    bool last_was_missing = false;
    for (size_t i = 0; i < piece.size(); ++i) {
      int32_t id = byte_ids_[static_cast<uint8_t>(piece[i])];
      const bool missing = id < 0;
      if (missing) {
        id = cfg_.missing_byte_id;
        if (id < 0 || (cfg_.fuse_unk && last_was_missing)) continue;
      }
      last_was_missing = missing;
      const auto n = static_cast<int32_t>(sym.size());
      sym.push_back({id, n - 1, n + 1, true});
    }
    if (!sym.empty()) sym.back().next = -1;

    struct Candidate {
      int32_t rank, pos, left, right;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    auto consider = [&](int32_t pos) {
      if (pos < 0 || sym[pos].next < 0) return;
      auto it = merges_.find(pair_key(sym[pos].id, sym[sym[pos].next].id));
      if (it != merges_.end()) queue.push({it->second.rank, pos, sym[pos].id, sym[sym[pos].next].id});
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) consider(i);
    while (!queue.empty()) {
      const Candidate c = queue.top();
      queue.pop();
      Symbol& left = sym[c.pos];
      if (!left.alive || left.id != c.left || left.next < 0 || sym[left.next].id != c.right) continue;
      Symbol& right = sym[left.next];
      left.id = merges_.at(pair_key(c.left, c.right)).result;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) sym[right.next].prev = c.pos;
      consider(left.prev);
      consider(c.pos);
    }
    std::vector<int32_t> ids;
    for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
    return ids;
  }

  BpeConfig cfg_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};
  std::array<std::vector<size_t>, 256> added_by_first_byte_;
  std::vector<bool> special_;
  std::vector<std::string> bytes_;
  // Per-word results; encode() is logically const and may run on several threads.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeConfig config) {
  return std::make_unique<BpeTokenizer>(std::move(config));
}

}  // namespace mf
