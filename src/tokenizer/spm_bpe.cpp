// SentencePiece BPE, two ways. By ranks (HF `tokenizers` with byte_fallback): characters are the
// symbols, a character with no piece becomes its <0xXX> pieces, then the merges of
// model.merges. By scores (SentencePiece and llama.cpp's spm path): any adjacent pair whose
// concatenation is a piece may merge, the highest-scoring first, leftmost on ties; symbols left
// with no piece fall back to bytes at the end.
#include <functional>
#include <queue>

#include "core/error.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/spm_models.h"
#include "tokenizer/unicode.h"

namespace mf {
namespace {

class BpeRanks final : public SpmModel {
 public:
  BpeRanks(const SpmConfig& c, const SpmPieceIndex& index) : index_(index), fuse_unk_(c.fuse_unk) {
    merges_.reserve(c.merges.size());
    for (size_t rank = 0; rank < c.merges.size(); ++rank) {
      const auto& [l, r] = c.merges[rank];
      const int32_t li = index.find(l), ri = index.find(r), mi = index.find(l + r);
      MF_CHECK(li >= 0 && ri >= 0, c.source, ": merge ", rank, " '", l, " ", r,
               "' uses a token that is not in the vocabulary");
      MF_CHECK(mi >= 0, c.source, ": merge ", rank, " '", l, " ", r, "' produces '", l + r,
               "', which is not in the vocabulary");
      merges_.add(li, ri, BpeMerge{static_cast<int32_t>(rank), mi});
    }
  }

  void encode(std::string_view text, std::vector<int32_t>& out) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    bool pending_unk = false;  // a run of unknown characters fused into one <unk>
    for (size_t pos = 0; pos < text.size();) {
      const auto u = unicode::decode_utf8(text, pos);
      const std::string_view ch = text.substr(pos, u.length);
      pos += u.length;
      if (const int32_t id = index_.find(ch); id >= 0) {
        if (pending_unk) ids.push_back(index_.unk_id);
        pending_unk = false;
        ids.push_back(id);
        continue;
      }
      if (index_.byte_fallback && all_bytes_known(ch)) {
        if (pending_unk) ids.push_back(index_.unk_id);
        pending_unk = false;
        for (char b : ch) ids.push_back(index_.byte_ids[static_cast<uint8_t>(b)]);
        continue;
      }
      if (index_.unk_id < 0) continue;  // HF drops a character it cannot spell
      if (pending_unk && !fuse_unk_) ids.push_back(index_.unk_id);
      pending_unk = true;
    }
    if (pending_unk) ids.push_back(index_.unk_id);
    merge_by_rank(ids, merges_);
    out.insert(out.end(), ids.begin(), ids.end());
  }

 private:
  bool all_bytes_known(std::string_view ch) const {
    for (char b : ch)
      if (index_.byte_ids[static_cast<uint8_t>(b)] < 0) return false;
    return true;
  }

  const SpmPieceIndex& index_;
  bool fuse_unk_;
  BpeMergeTable merges_;
};

class BpeScores final : public SpmModel {
 public:
  BpeScores(const SpmConfig& c, const SpmPieceIndex& index) : cfg_(c), index_(index) {}

  void encode(std::string_view text, std::vector<int32_t>& out) const override {
    struct Symbol {
      uint32_t begin, length;  // bytes of `text`; length 0 once merged into its left neighbour
      int32_t prev, next;
    };
    std::vector<Symbol> sym;
    for (size_t pos = 0; pos < text.size();) {
      const auto len = unicode::decode_utf8(text, pos).length;
      const auto n = static_cast<int32_t>(sym.size());
      sym.push_back({static_cast<uint32_t>(pos), len, n - 1, n + 1});
      pos += len;
    }
    if (sym.empty()) return;
    sym.back().next = -1;

    struct Bigram {
      double score;
      int32_t left, right;
      uint32_t length;  // bytes of the pair when queued: a changed symbol makes it stale
      bool operator<(const Bigram& o) const { return score != o.score ? score < o.score : left > o.left; }
    };
    std::priority_queue<Bigram> queue;
    // SentencePiece splits an unused piece back into the halves that formed it.
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> formed_from;
    auto view = [&](const Symbol& s) { return text.substr(s.begin, s.length); };
    auto consider = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const uint32_t length = sym[left].length + sym[right].length;
      const std::string_view pair = text.substr(sym[left].begin, length);
      const int32_t id = index_.find(pair);
      if (id < 0) return;
      queue.push({cfg_.scores[id], left, right, length});
      if (cfg_.resegment_unused && cfg_.types[id] == SpmPieceType::Unused)
        formed_from[pair] = {view(sym[left]), view(sym[right])};
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) consider(i - 1, i);
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.length == 0 || r.length == 0 || l.length + r.length != b.length || l.next != b.right) continue;
      l.length += r.length;
      r.length = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      consider(l.prev, b.left);
      consider(b.left, l.next);
    }
    bool last_unknown = false;
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
      // SentencePiece without byte fallback fuses a run of unknown characters into one <unk>.
      const bool unknown = index_.find(view(sym[i])) < 0;
      if (!(unknown && last_unknown && cfg_.fuse_unk && !index_.byte_fallback)) emit(view(sym[i]), formed_from, out, 0);
      last_unknown = unknown;
    }
  }

 private:
  using FormedFrom = std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>>;

  // Each step halves nothing in particular but always shortens the text, so the depth is bounded
  // by the piece length; the explicit bound guards against a logic error all the same.
  void emit(std::string_view piece, const FormedFrom& formed_from, std::vector<int32_t>& out, int depth) const {
    const int32_t id = index_.find(piece);
    if (id < 0) {
      index_.append_unknown(piece, out);
      return;
    }
    if (cfg_.resegment_unused && cfg_.types[id] == SpmPieceType::Unused && depth < 64) {
      auto it = formed_from.find(piece);
      if (it != formed_from.end()) {
        emit(it->second.first, formed_from, out, depth + 1);
        emit(it->second.second, formed_from, out, depth + 1);
        return;
      }
    }
    out.push_back(id);
  }

  const SpmConfig& cfg_;
  const SpmPieceIndex& index_;
};

}  // namespace

std::unique_ptr<SpmModel> make_spm_bpe_ranks(const SpmConfig& config, const SpmPieceIndex& index) {
  return std::make_unique<BpeRanks>(config, index);
}

std::unique_ptr<SpmModel> make_spm_bpe_scores(const SpmConfig& config, const SpmPieceIndex& index) {
  return std::make_unique<BpeScores>(config, index);
}

}  // namespace mf
