// Byte-level BPE tokenizer. Both loaders (tokenizer.json and GGUF BpeVocab) fill a BpeConfig.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace mf {

struct BpeConfig {
  std::vector<std::string> tokens;                              // id -> byte-level string
  std::vector<std::pair<std::string, std::string>> merges;      // rank order
  std::vector<AddedToken> added;
  PreTokenizer pre;
  Normalizer normalizer;       // on text between added tokens (Qwen2: NFC)
  bool ignore_merges = false;  // a pre-token that is itself in the vocab is emitted whole
  // A byte with no token of its own is dropped, as HF's BPE does when model.unk_token is null
  // (GPT-2 style vocabularies, and what llama.cpp does); with an id it becomes that token,
  // consecutive ones fused into one when fuse_unk.
  int32_t missing_byte_id = -1;
  bool fuse_unk = false;
  std::string source;          // file or "GGUF vocab", for error messages
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1;
  bool add_bos = false, add_eos = false;
};

// Validates the configuration (throws mf::Error naming config.source) and builds the tokenizer.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeConfig config);

}  // namespace mf
