// BPE encoding in HF tokenizers' order: added tokens split out (leftmost, longest), then per
// segment the normalizer (Qwen2: NFC), pre-tokenization, the byte map and merges by rank via a priority queue.
// Short words' results are cached under a mutex: encode() is const and may run on many threads.
#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"

namespace mf {
namespace {

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
    added_ = AddedTokenMatcher(cfg_.added);

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
      merges_.add(li->second, ri->second, BpeMerge{static_cast<int32_t>(rank), mi->second});
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
    added_.split(text, parse_special, [&](std::string_view segment) { encode_segment(segment, out); },
                 [&](int32_t id) { out.push_back(id); });
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
  void check_id(int32_t id) const {
    MF_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " out of range for a vocabulary of ",
             vocab_size(), " (", cfg_.source, ")");
  }

  void encode_segment(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::string normalized;
    if (!cfg_.normalizer.empty()) {
      normalized = cfg_.normalizer.apply(text);
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

  // The bytes of `piece` as symbols, then HF's merge loop.
  std::vector<int32_t> merge(std::string_view piece) const {
    std::vector<int32_t> ids;
    ids.reserve(piece.size());
    bool last_was_missing = false;
    for (size_t i = 0; i < piece.size(); ++i) {
      int32_t id = byte_ids_[static_cast<uint8_t>(piece[i])];
      const bool missing = id < 0;
      if (missing) {
        id = cfg_.missing_byte_id;
        if (id < 0 || (cfg_.fuse_unk && last_was_missing)) continue;
      }
      last_was_missing = missing;
      ids.push_back(id);
    }
    merge_by_rank(ids, merges_);
    return ids;
  }

  BpeConfig cfg_;
  std::unordered_map<std::string, int32_t> ids_;
  BpeMergeTable merges_;
  std::array<int32_t, 256> byte_ids_{};
  AddedTokenMatcher added_;
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
