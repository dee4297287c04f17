// A SentencePiece tokenizer: added tokens split out first (as for byte-level BPE), each segment
// between them normalized, passed through the Metaspace pre-tokenizer when the file has one,
// and encoded by the model (spm_models.h). Decoding turns ▁ back into spaces, byte pieces into
// bytes, and drops the space the encoder put before the first word.
#include "tokenizer/spm_tokenizer.h"

#include <charconv>

#include "core/error.h"
#include "tokenizer/spm_models.h"

namespace mf {
namespace {

// "<0xAB>" -> 0xAB, or -1 for any other text (HF's ByteFallback decoder accepts exactly this form).
int byte_piece_value(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int v = 0;
  const auto r = std::from_chars(piece.data() + 3, piece.data() + 5, v, 16);
  return r.ec == std::errc() && r.ptr == piece.data() + 5 ? v : -1;
}

std::string replace_spaces(std::string_view text, std::string_view with) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0;;) {
    const size_t hit = text.find(kSpmSpace, pos);
    out.append(text.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos));
    if (hit == std::string_view::npos) return out;
    out.append(with);
    pos = hit + kSpmSpace.size();
  }
}

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(SpmConfig c) : cfg_(std::move(c)), index_(validated(cfg_)) {
    kind = "spm";
    bos_id = cfg_.bos_id, eos_id = cfg_.eos_id, pad_id = cfg_.pad_id, unk_id = cfg_.unk_id;
    add_bos = cfg_.add_bos, add_eos = cfg_.add_eos;
    const auto n = static_cast<int32_t>(cfg_.pieces.size());
    special_.assign(n, false);
    for (const AddedToken& t : cfg_.added) {
      MF_CHECK(t.id >= 0 && t.id < n, cfg_.source, ": added token '", t.content, "' has id ", t.id,
               " outside the vocabulary of ", n);
      MF_CHECK(!t.content.empty(), cfg_.source, ": added token ", t.id, " is empty");
      special_[t.id] = t.special;
    }
    added_ = AddedTokenMatcher(cfg_.added);
    for (const auto& [piece, id] : index_.ids) vocab_.emplace(std::string(piece), id);
    for (int32_t id = 0; id < n; ++id) vocab_.emplace(cfg_.pieces[id], id);  // all pieces, for lookups
    switch (cfg_.algorithm) {
      case SpmAlgorithm::BpeRanks: model_ = make_spm_bpe_ranks(cfg_, index_); break;
      case SpmAlgorithm::BpeScores: model_ = make_spm_bpe_scores(cfg_, index_); break;
      case SpmAlgorithm::Unigram: model_ = make_unigram(cfg_, index_); break;
    }
    bytes_.resize(n);
    for (int32_t id = 0; id < n; ++id) {
      const std::string& p = cfg_.pieces[id];
      const int byte = cfg_.decode_bytes ? byte_piece_value(p) : -1;
      if (byte >= 0)
        bytes_[id] = std::string(1, static_cast<char>(byte));
      else
        bytes_[id] = cfg_.decode_spaces ? replace_spaces(p, " ") : p;
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool parse_special) const override {
    return encode_text(text, parse_special, false);
  }

  std::vector<int32_t> encode_continuation(std::string_view text, bool parse_special) const override {
    return encode_text(text, parse_special, true);
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    bool opening = true;
    for (int32_t id : ids) {
      check_id(id);
      if (skip_special && special_[id]) continue;
      out += opening ? opening_token_bytes(id, opening) : bytes_[id];
    }
    return out;
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    return bytes_[id];
  }

  std::string opening_token_bytes(int32_t id, bool& still_opening) const override {
    check_id(id);
    still_opening = false;
    switch (cfg_.opening) {
      case SpmConfig::Opening::None: return bytes_[id];
      case SpmConfig::Opening::StripSpace:
        // Strip acts on the fused text: a token with no bytes leaves the next one opening it.
        if (bytes_[id].empty()) still_opening = true;
        return !bytes_[id].empty() && bytes_[id][0] == ' ' ? bytes_[id].substr(1) : bytes_[id];
      case SpmConfig::Opening::MetaspaceFirst:
        if (cfg_.decode_bytes && byte_piece_value(cfg_.pieces[id]) >= 0) return bytes_[id];
        return replace_spaces(cfg_.pieces[id], "");
    }
    return bytes_[id];
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(cfg_.pieces.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    auto it = vocab_.find(std::string(token));
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  bool is_special(int32_t id) const override {
    check_id(id);
    return special_[id];
  }

 private:
  // Checks what the piece index and the models rely on, before they are built.
  static const SpmConfig& validated(const SpmConfig& c) {
    const size_t n = c.pieces.size();
    MF_CHECK(n > 0, c.source, ": empty SentencePiece vocabulary");
    MF_CHECK(n < (size_t(1) << 31), c.source, ": vocabulary of ", n, " pieces is too large");
    MF_CHECK(c.types.empty() || c.types.size() == n, c.source, ": ", c.types.size(), " piece types for ", n, " pieces");
    MF_CHECK(c.matchable.empty() || c.matchable.size() == n, c.source, ": ", c.matchable.size(),
             " matchable flags for ", n, " pieces");
    MF_CHECK(c.algorithm == SpmAlgorithm::BpeRanks || c.scores.size() == n, c.source, ": ", c.scores.size(),
             " scores for ", n, " pieces");
    MF_CHECK(!c.resegment_unused || c.types.size() == n, c.source, ": resegmenting unused pieces needs piece types");
    for (int32_t id : {c.bos_id, c.eos_id, c.pad_id, c.unk_id})
      MF_CHECK(id >= -1 && id < int64_t(n), c.source, ": special token id ", id, " out of range [0, ", n, ")");
    return c;
  }

  void check_id(int32_t id) const {
    MF_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " out of range for a vocabulary of ", vocab_size(),
             " (", cfg_.source, ")");
  }

  // continuation: the text goes on from text encoded before it, so its first segment gets no
  // space prefix (segments after a special token get theirs as in any text).
  std::vector<int32_t> encode_text(std::string_view text, bool parse_special, bool continuation) const {
    std::vector<int32_t> out;
    added_.split(
        text, parse_special,
        [&](std::string_view segment) {
          const bool first = segment.data() == text.data();
          encode_segment(segment, first && !continuation, first && continuation, out);
        },
        [&](int32_t id) { out.push_back(id); });
    return out;
  }

  void encode_segment(std::string_view segment, bool at_text_start, bool continues_text,
                      std::vector<int32_t>& out) const {
    if (segment.empty()) return;
    std::string text = cfg_.normalizer.apply(segment, continues_text);
    if (!cfg_.metaspace) {
      model_->encode(text, out);
      return;
    }
    using Prepend = SpmConfig::Metaspace::Prepend;
    text = replace_all_spaces(text);
    const bool starts_with_space = text.compare(0, kSpmSpace.size(), kSpmSpace) == 0;
    if (!text.empty() && !starts_with_space && !continues_text &&
        (cfg_.metaspace->prepend == Prepend::Always || (cfg_.metaspace->prepend == Prepend::First && at_text_start)))
      text.insert(0, kSpmSpace);
    if (!cfg_.metaspace->split) {
      model_->encode(text, out);
      return;
    }
    // Split before every ▁ (HF's MergedWithNext): each word keeps the ▁ that starts it.
    const std::string_view all(text);
    size_t begin = 0;
    for (size_t hit = all.find(kSpmSpace, 1); hit != std::string_view::npos; hit = all.find(kSpmSpace, hit + 1)) {
      if (hit > begin) model_->encode(all.substr(begin, hit - begin), out);
      begin = hit;
    }
    if (begin < all.size()) model_->encode(all.substr(begin), out);
  }

  static std::string replace_all_spaces(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    for (char ch : text) {
      if (ch == ' ')
        out += kSpmSpace;
      else
        out.push_back(ch);
    }
    return out;
  }

  SpmConfig cfg_;
  SpmPieceIndex index_;
  std::unique_ptr<SpmModel> model_;
  AddedTokenMatcher added_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<bool> special_;
  std::vector<std::string> bytes_;  // what each id decodes to (not as the opening token)
};

}  // namespace

SpmPieceIndex::SpmPieceIndex(const SpmConfig& c) : unk_id(c.unk_id), byte_fallback(c.byte_fallback) {
  byte_ids.fill(-1);
  const size_t n = c.pieces.size();
  ids.reserve(n);
  for (size_t id = 0; id < n; ++id) {
    const std::string& p = c.pieces[id];
    if (const int b = byte_piece_value(p); b >= 0 && byte_ids[size_t(b)] < 0 &&
                                           (c.types.empty() || c.types[id] == SpmPieceType::Byte ||
                                            c.types[id] == SpmPieceType::Normal))
      byte_ids[size_t(b)] = static_cast<int32_t>(id);
    if (!c.matchable.empty() && !c.matchable[id]) continue;
    if (p.empty()) continue;
    ids.emplace(std::string_view(p), static_cast<int32_t>(id));
  }
}

void SpmPieceIndex::append_unknown(std::string_view text, std::vector<int32_t>& out) const {
  if (byte_fallback) {
    bool all = true;
    for (char b : text) all = all && byte_ids[static_cast<uint8_t>(b)] >= 0;
    if (all) {
      for (char b : text) out.push_back(byte_ids[static_cast<uint8_t>(b)]);
      return;
    }
  }
  if (unk_id >= 0) out.push_back(unk_id);
}

std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmConfig config) {
  return std::make_unique<SpmTokenizer>(std::move(config));
}

}  // namespace mf
