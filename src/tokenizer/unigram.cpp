// Unigram: the segmentation of highest total log-probability (Viterbi over every piece that
// starts at each character), as HF `tokenizers` and SentencePiece compute it. A character with
// no single-character piece also gets an <unk> edge costing the lowest score minus 10; runs of
// unknown characters are one <unk> (or their bytes with byte fallback).
#include <limits>

#include "core/error.h"
#include "tokenizer/spm_models.h"
#include "tokenizer/unicode.h"

namespace mf {
namespace {

constexpr double kUnknownPenalty = 10.0;

// A byte trie of the matchable pieces: walking the text from a position yields every piece that
// starts there.
class PieceTrie {
 public:
  void insert(std::string_view piece, int32_t id) {
    uint32_t node = 0;
    for (char c : piece) {
      const uint64_t k = key(node, c);
      auto it = children_.find(k);
      if (it == children_.end()) {
        it = children_.emplace(k, static_cast<uint32_t>(piece_at_.size())).first;
        piece_at_.push_back(-1);
      }
      node = it->second;
    }
    if (piece_at_[node] < 0) piece_at_[node] = id;  // first id wins, as in the vocabulary map
  }
  // Calls on_piece(id, length) for each piece that is a prefix of text[pos..].
  template <class F>
  void prefixes(std::string_view text, size_t pos, F&& on_piece) const {
    uint32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      auto it = children_.find(key(node, text[i]));
      if (it == children_.end()) return;
      node = it->second;
      if (piece_at_[node] >= 0) on_piece(piece_at_[node], i + 1 - pos);
    }
  }

 private:
  static uint64_t key(uint32_t node, char c) { return (uint64_t(node) << 8) | static_cast<uint8_t>(c); }
  std::unordered_map<uint64_t, uint32_t> children_;
  std::vector<int32_t> piece_at_{-1};  // node -> piece id; node 0 is the root
};

template <class Real>
class Unigram final : public SpmModel {
 public:
  Unigram(const SpmConfig& c, const SpmPieceIndex& index) : cfg_(c), index_(index) {
    MF_CHECK(c.scores.size() == c.pieces.size(), c.source, ": a Unigram model needs one score per piece (",
             c.scores.size(), " scores for ", c.pieces.size(), " pieces)");
    double min_score = std::numeric_limits<double>::max();
    for (const auto& [piece, id] : index.ids) {
      trie_.insert(piece, id);
      min_score = std::min(min_score, c.scores[id]);
    }
    MF_CHECK(!index.ids.empty(), c.source, ": a Unigram model needs pieces");
    unk_score_ = static_cast<Real>(min_score - kUnknownPenalty);
  }

  void encode(std::string_view text, std::vector<int32_t>& out) const override {
    struct Node {
      Real score = 0;
      int32_t id = -1;
      int64_t start = -1;  // -1: not reached
    };
    std::vector<Node> best(text.size() + 1);
    best[0].start = 0;
    for (size_t pos = 0; pos < text.size();) {
      const Real here = best[pos].score;
      const size_t char_len = unicode::decode_utf8(text, pos).length;
      bool single_char_piece = false;
      auto offer = [&](size_t end, int32_t id, Real score) {
        Node& n = best[end];
        const Real candidate = score + here;
        if (n.start < 0 || candidate > n.score) n = {candidate, id, static_cast<int64_t>(pos)};
      };
      trie_.prefixes(text, pos, [&](int32_t id, size_t len) {
        offer(pos + len, id, static_cast<Real>(cfg_.scores[id]));
        if (len == char_len) single_char_piece = true;
      });
      if (!single_char_piece) offer(pos + char_len, -1, unk_score_);  // -1: unknown
      pos += char_len;
    }
    // Back from the end; adjacent unknown spans are fused into one.
    std::vector<std::pair<size_t, size_t>> spans;  // [begin, end) of each piece, reversed
    std::vector<int32_t> ids;
    for (size_t end = text.size(); end > 0;) {
      const Node& n = best[end];
      const auto begin = static_cast<size_t>(n.start);
      if (n.id < 0 && !ids.empty() && ids.back() < 0) {
        spans.back().first = begin;
      } else {
        spans.emplace_back(begin, end);
        ids.push_back(n.id);
      }
      end = begin;
    }
    for (size_t i = ids.size(); i-- > 0;) {
      if (ids[i] >= 0)
        out.push_back(ids[i]);
      else
        index_.append_unknown(text.substr(spans[i].first, spans[i].second - spans[i].first), out);
    }
  }

 private:
  const SpmConfig& cfg_;
  const SpmPieceIndex& index_;
  PieceTrie trie_;
  Real unk_score_;
};

}  // namespace

std::unique_ptr<SpmModel> make_unigram(const SpmConfig& config, const SpmPieceIndex& index) {
  if (config.float_scores) return std::make_unique<Unigram<float>>(config, index);
  return std::make_unique<Unigram<double>>(config, index);
}

}  // namespace mf
