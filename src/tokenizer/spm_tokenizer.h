// SentencePiece-style tokenizers: text as Unicode characters with spaces written as "▁"
// (U+2581), split by BPE or Unigram, characters outside the vocabulary spelled as <0xXX> byte
// pieces (byte fallback). Three loaders fill one SpmConfig: HF tokenizer.json (spm_from_
// tokenizer_json.cpp), SentencePiece's tokenizer.model (sentencepiece_model.cpp) and a GGUF
// vocabulary with tokenizer.ggml.model = llama (bpe_from_vocab.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer.h"

namespace mf {

// The UTF-8 of U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

enum class SpmAlgorithm {
  BpeRanks,   // HF `tokenizers` BPE: merges from model.merges, lowest rank first
  BpeScores,  // SentencePiece / llama.cpp BPE: any adjacent pair that forms a piece, highest
              // score first (leftmost on ties)
  Unigram,    // Viterbi over piece log-probabilities; unknown characters cost min score - 10
};

// GGUF / SentencePiece piece types.
enum class SpmPieceType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct SpmConfig {
  SpmAlgorithm algorithm = SpmAlgorithm::BpeRanks;
  std::vector<std::string> pieces;                          // id -> piece text
  std::vector<double> scores;                               // BpeScores, Unigram: one per piece
  bool float_scores = false;   // Unigram sums in float as SentencePiece does (HF: double)
  std::vector<SpmPieceType> types;                          // one per piece
  // Pieces the algorithm may produce from text: HF's models use every vocabulary entry,
  // SentencePiece only normal, user-defined and unused pieces. Empty = all.
  std::vector<bool> matchable;
  // SentencePiece BPE: an unused piece the merges produced is split back into its two halves.
  bool resegment_unused = false;
  std::vector<std::pair<std::string, std::string>> merges;  // BpeRanks: rank order
  bool byte_fallback = false;  // unknown characters as <0xXX> pieces (when all exist)
  bool fuse_unk = false;       // consecutive unknown characters as one <unk>
  std::vector<AddedToken> added;
  Normalizer normalizer;       // per segment of text between added tokens

  // HF's Metaspace pre-tokenizer: ' ' -> ▁, a ▁ prepended (Always: to every segment that does
  // not start with one; First: only to the segment at the start of the text), then optionally
  // split before every ▁.
  struct Metaspace {
    enum class Prepend { Always, First, Never } prepend = Prepend::Always;
    bool split = true;
  };
  std::optional<Metaspace> metaspace;

  // Decoding: ▁ -> ' ', <0xXX> pieces -> their byte (HF's ByteFallback decoder; else the piece
  // text is kept), and how the space the encoder prepended is dropped again.
  bool decode_spaces = true;
  bool decode_bytes = true;
  enum class Opening {
    None,
    StripSpace,       // HF Strip(' ', 1, 0) after Fuse: one leading ' ' of the text
    MetaspaceFirst,   // HF Metaspace decoder: every ▁ of the first token is dropped
  } opening = Opening::StripSpace;

  std::string source;          // file, for error messages
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1;
  bool add_bos = false, add_eos = false;
};

// Validates (throws mf::Error naming config.source) and builds the tokenizer (kind "spm").
std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmConfig config);

// Reads a SentencePiece model file (tokenizer.model): pieces, scores, types, the model type
// (BPE or Unigram) and the normalizer's whitespace options. Throws mf::Error naming the file
// for anything malformed or unsupported.
SpmConfig spm_config_from_model_file(const std::string& path);

// A SentencePiece-style HF tokenizer.json (and tokenizer_config.json beside it) as a config.
SpmConfig spm_config_from_tokenizer_json(const std::string& path);

// GGUF: the llama.cpp "llama" vocabulary <-> config. From a vocabulary: llama.cpp's algorithm
// (scores, byte fallback, "▁" before the text and after each special token). To one: a
// SentencePiece BPE config's pieces, types and scores (from merge ranks when it has no scores);
// a Unigram config is refused (llama.cpp's "llama" model is BPE).
SpmConfig spm_config_from_vocab(const BpeVocab& vocab);
BpeVocab spm_vocab_for_gguf(const SpmConfig& config);
// A Llama-2 style tokenizer.json for a "llama" GGUF vocabulary (merges derived from the scores
// as transformers' SentencePiece converter derives them), so HF tools and moeforge's training
// read the model's tokenizer from a standard directory.
std::string spm_vocab_to_tokenizer_json(const BpeVocab& vocab);

}  // namespace mf
