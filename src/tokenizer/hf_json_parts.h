// Pieces of HF tokenizer.json reading shared by the byte-level BPE and SentencePiece loaders:
// structure helpers, added tokens, the post-processor's BOS/EOS and tokenizer_config.json.
// Internal to src/tokenizer.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/added_tokens.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer.h"

namespace mf::hf_json {

using json = nlohmann::json;

// Sequences inside Sequences: real tokenizers nest one level; a file nesting thousands is refused
// before recursion could exhaust the stack.
constexpr int kMaxSequenceNesting = 16;
void check_nesting(int depth, const std::string& where);

const json& array_member(const json& j, const char* key);  // j[key] if an array, else []
const json& member_or_null(const json& j, const char* key);
std::string type_of(const json& j, const std::string& where);  // j["type"], or mf::Error
// A token id read from JSON: an integer in [0, 2^31), else mf::Error naming `what`.
int32_t token_id(const json& j, const std::string& what);

// NFC, Lowercase, Strip, Replace (string or regex), Prepend and Sequence; anything else is
// refused by name with the reason.
void read_normalizer(const json& j, const std::string& where, Normalizer& n, int depth = 0);

struct SpecialIds {
  int32_t bos = -1, eos = -1, pad = -1, unk = -1;
  bool add_bos = false, add_eos = false;
};

struct AddedTokenEntry {
  AddedToken token;
  bool normalized = false;   // HF matches it in the normalized text
};
std::vector<AddedTokenEntry> read_added_tokens(const json& root, const std::string& path);

// TemplateProcessing's single template: a special token first -> add_bos, last -> add_eos.
void read_post_processor(const json& j, const std::string& where, SpecialIds& ids, int depth = 0);
// tokenizer_config.json beside `tokenizer_json_path`, when present: bos/eos/pad/unk names (looked
// up with `id_of`, -1 when absent) and add_bos_token / add_eos_token.
void read_tokenizer_config(const std::string& tokenizer_json_path,
                           const std::function<int32_t(const std::string&)>& id_of, SpecialIds& ids);

// model.type "Unigram", or "BPE" without a ByteLevel pre-tokenizer step: SentencePiece-style.
bool is_sentencepiece_style(const json& root);
std::unique_ptr<Tokenizer> load_spm_tokenizer_json(const json& root, const std::string& path);

}  // namespace mf::hf_json
