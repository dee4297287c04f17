// Tokenizers: byte-level BPE (from HF tokenizer.json or a GGUF vocabulary), SentencePiece BPE and
// Unigram (spm_tokenizer.h: tokenizer.json, tokenizer.model, GGUF "llama") and char-level.
//
// Conventions shared by every Tokenizer:
//  - encode() never adds BOS/EOS by itself; a caller that starts a sequence prepends bos_id
//    when add_bos is set (see encode_for_model below), exactly what HF's post-processor does.
//  - decode()/token_bytes() return raw bytes. A multi-byte character may be split across
//    tokens, so the bytes of one id (or of a prefix of ids) need not be valid UTF-8; use
//    StreamDecoder to print while generating.
//  - Invalid UTF-8 in the input to encode() is kept byte-for-byte: each ill-formed byte is one
//    "other" (punctuation-like) character for pre-tokenization and is encoded through its byte
//    token, so decode(encode(x)) == x for every byte string x. (HF `tokenizers` cannot receive
//    invalid UTF-8 at all: Rust &str and Python str both reject it.)
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mf {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // parse_special: text like "<|im_start|>" becomes the special token instead of being split.
  // (Non-special added tokens, GGUF type USER_DEFINED, are always kept whole, as in HF.)
  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const = 0;
  // Encodes `text` as the continuation of a text already encoded before it (SFT encodes a
  // conversation span by span): a SentencePiece tokenizer then adds no space prefix of its own
  // at the start, as it would not in the middle of the whole text. Others: encode().
  virtual std::vector<int32_t> encode_continuation(std::string_view text, bool parse_special = true) const {
    return encode(text, parse_special);
  }
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = false) const = 0;
  virtual std::string token_bytes(int32_t id) const = 0;   // raw bytes this token stands for
  // The bytes of `id` as the first token of a decoded text. SentencePiece decoders drop the
  // space the encoder put before the first word (decode() does it too); `still_opening` says
  // whether the next token still opens the text (this one produced nothing).
  virtual std::string opening_token_bytes(int32_t id, bool& still_opening) const {
    still_opening = false;
    return token_bytes(id);
  }
  virtual int32_t vocab_size() const = 0;
  // Looks a token up by its vocabulary string (byte-level form for BPE, e.g. "Ġthe").
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1; bool add_bos = false;
  bool add_eos = false;  // from a TemplateProcessing post-processor that appends a token
  std::string kind;   // "bpe" | "spm" | "char"
};

// Encodes one whole model input: bos_id first when add_bos, eos_id last when add_eos.
std::vector<int32_t> encode_for_model(const Tokenizer& tok, std::string_view text,
                                      bool parse_special = true);

// Emits only complete UTF-8 characters; holds back a partial multi-byte sequence until done.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true);
  std::string push(int32_t id);
  std::string flush();   // whatever is held back, even if incomplete; resets the decoder

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool opening_ = true;   // no token decoded yet: the next one opens the text
  std::string pending_;
};

struct BpeVocab {              // what a GGUF file (tokenizer.ggml.*) carries
  // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE with byte
  // fallback, llama.cpp's spm algorithm: scores, not merges)
  std::string model = "gpt2";
  std::vector<std::string> tokens;       // byte-level strings (gpt2) or pieces with ▁ (llama), index = id
  std::vector<std::string> merges;       // gpt2: "left right", best (lowest rank) first
  std::vector<float> scores;             // llama: merge priority of each piece (higher first)
  bool add_space_prefix = true;          // llama: "▁" before the text and after each special token
  std::vector<int32_t> token_types;      // GGUF: 1 normal, 2 unknown, 3 control, 4 user-defined,
                                         // 5 unused, 6 byte; empty = all normal
  std::string pre = "gpt-2";   // tokenizer.ggml.pre: smollm, gpt-2, llama-bpe (llama3), qwen2, ...
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1; bool add_bos = false;
  std::string source = "GGUF vocabulary";  // the file it came from, for error messages
};
// The tokenizer a GGUF vocabulary describes (byte-level BPE for gpt2, SentencePiece BPE for
// llama). Throws mf::Error on an unknown model or `pre`, out-of-range ids, malformed merges or
// missing byte tokens.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeVocab vocab);
// A Hugging Face tokenizer.json for a GGUF vocabulary (byte-level BPE, added tokens for the
// control ones), so a model trained with it can be saved as a standard directory. Supported
// pre-tokenizers: gpt2, and smollm/starcoder/refact (single digits first); others throw.
std::string bpe_vocab_to_tokenizer_json(const BpeVocab& vocab);
// The inverse, for byte-level BPE tokenizer.json files with a gpt2 or smollm pre-tokenizer, and
// for SentencePiece BPE ones (Llama-2 style: model "llama", scores from the merge ranks)
// (special ids and add_bos from tokenizer_config.json beside it): what a GGUF export embeds.
BpeVocab bpe_vocab_from_tokenizer_json(const std::string& tokenizer_json_path);

// Reads tokenizer.json (and tokenizer_config.json beside it, when present, for bos/eos/pad/unk
// and add_bos_token): byte-level BPE, or SentencePiece BPE / Unigram (docs/tokenizers.md).
// Throws mf::Error naming the file and field for anything unsupported.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json_path);

// Char-level tokenizer: ids 0..3 are <pad>, <bos>, <eos>, <unk>, then the distinct characters
// of `corpus` in code point order. Characters not in the vocabulary encode as <unk>.
std::unique_ptr<Tokenizer> make_char_tokenizer(std::string_view corpus);
// JSON: {"type": "char", "specials": [...], "chars": [...]}; save fails unless kind == "char".
void save_char_tokenizer(const Tokenizer& tok, const std::string& path);
std::unique_ptr<Tokenizer> load_char_tokenizer(const std::string& path);

}  // namespace mf
