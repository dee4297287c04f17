// Pretraining text: plain .txt files (one document each) and JSONL files of {"text": ...}
// records, turned into one token stream with an end-of-sequence token between documents.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mf {

// Documents of every file, in order. A .jsonl line that is not a JSON object with a string
// "text" field is an mf::Error naming file:line and the reason; blank lines are skipped.
std::vector<std::string> read_text_documents(const std::vector<std::string>& files);

// Every document encoded (no BOS), followed by tok.eos_id when the tokenizer has one.
std::vector<int32_t> tokenize_documents(const Tokenizer& tok, const std::vector<std::string>& docs);

}  // namespace mf
