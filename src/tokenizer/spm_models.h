// The three ways a SentencePiece tokenizer splits one normalized piece of text into ids
// (SpmAlgorithm), behind one interface; spm_tokenizer.cpp does the rest (added tokens,
// normalization, Metaspace, decoding). Internal to src/tokenizer.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/spm_tokenizer.h"

namespace mf {

// Lookups every algorithm needs, built once from an SpmConfig.
struct SpmPieceIndex {
  std::unordered_map<std::string_view, int32_t> ids;  // matchable pieces -> id (first id wins)
  std::array<int32_t, 256> byte_ids{};                  // <0xXX> piece of each byte, -1 if none
  int32_t unk_id = -1;
  bool byte_fallback = false;

  explicit SpmPieceIndex(const SpmConfig& c);
  int32_t find(std::string_view piece) const {
    auto it = ids.find(piece);
    return it == ids.end() ? -1 : it->second;
  }
  // Text with no piece: its bytes as <0xXX> pieces when byte fallback is on and all exist,
  // else the unknown piece (nothing when the vocabulary has none).
  void append_unknown(std::string_view text, std::vector<int32_t>& out) const;
};

class SpmModel {
 public:
  virtual ~SpmModel() = default;
  virtual void encode(std::string_view text, std::vector<int32_t>& out) const = 0;
};

// `config` and `index` must outlive the model (they are the tokenizer's own members).
std::unique_ptr<SpmModel> make_spm_bpe_ranks(const SpmConfig& config, const SpmPieceIndex& index);
std::unique_ptr<SpmModel> make_spm_bpe_scores(const SpmConfig& config, const SpmPieceIndex& index);
std::unique_ptr<SpmModel> make_unigram(const SpmConfig& config, const SpmPieceIndex& index);

}  // namespace mf
