// The non-weight parts of a model on disk: tokenizer, chat template and end-of-sequence ids,
// read from an HF directory (tokenizer.json, tokenizer_config.json, generation_config.json,
// config.json) or from a GGUF file's tokenizer.* metadata.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mf {

struct TokenizerFiles {
  std::unique_ptr<Tokenizer> tokenizer;
  std::string chat_template;          // empty when the model ships none
  std::string chat_template_origin;   // where it came from, for messages
  std::vector<int32_t> eos_ids;       // tokenizer eos + config/generation_config eos ids
};

// The file a char-level tokenizer is saved to in a model directory (moeforge's own models
// trained from scratch); tokenizer.json wins when both exist.
inline constexpr const char* kCharTokenizerFile = "tokenizer_char.json";

// Throws mf::Error naming the directory when tokenizer.json is missing or unreadable.
TokenizerFiles load_hf_tokenizer_files(const std::string& dir);
// The byte-level BPE vocabulary a GGUF carries (tokenizer.ggml.*).
BpeVocab load_gguf_bpe_vocab(const std::string& gguf_path);
// The vocabulary a GGUF export of model_path embeds: a GGUF's own, or an HF directory's
// tokenizer.json (byte-level or SentencePiece BPE), else its tokenizer.model.
BpeVocab gguf_vocab_of(const std::string& model_path);
// Throws mf::Error naming the file and key when tokenizer.ggml.* metadata is missing/invalid.
TokenizerFiles load_gguf_tokenizer_files(const std::string& gguf_path);

bool is_gguf_path(const std::string& path);

// Writes the tokenizer of model_path (HF directory or .gguf) into dir as standard files:
// tokenizer.json + tokenizer_config.json (with the chat template) + generation_config.json
// (eos ids), or tokenizer_char.json for moeforge's char models. A GGUF vocabulary is converted.
void copy_tokenizer_files(const std::string& model_path, const std::string& dir);

// The tokenizer files of a model path: a .gguf file's metadata or an HF directory's files.
TokenizerFiles load_tokenizer_files(const std::string& model_path);   // by magic bytes when readable, else extension

}  // namespace mf
