// Instruction records -> token sequences for supervised fine-tuning: each record is rendered
// with the target model's own chat template, and only the answer's tokens (the assistant turn
// of the record, its end-of-turn marker included) carry loss. History turns and the prompt
// carry none.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "data/sft_record.h"
#include "tokenizer/tokenizer.h"

namespace mf {

struct SftExamples {
  std::vector<int32_t> tokens;       // all sequences back to back
  std::vector<uint8_t> loss_mask;    // per token: 1 = an answer token the model must predict
  std::vector<int64_t> offsets;      // sequence i is [offsets[i], offsets[i+1])
  std::vector<int32_t> domain;       // per sequence: index into `domains`
  std::vector<std::string> domains;  // sorted domain names of the records

  size_t size() const { return domain.size(); }
  int64_t length(size_t i) const { return offsets[i + 1] - offsets[i]; }
  std::span<const int32_t> sequence(size_t i) const;
  std::span<const uint8_t> mask(size_t i) const;
  int64_t answer_tokens() const;     // loss-carrying tokens in all sequences
};

// Renders a conversation as the model's chat template does (data does not depend on infer; the
// caller wraps its ChatTemplate). add_generation_prompt opens the assistant turn.
using RenderChat = std::function<std::string(const std::vector<ChatTurn>& turns, bool add_generation_prompt)>;

struct SftTokenizeOptions {
  int max_len = 1024;  // longer sequences are cut at max_len (answer tail lost)
};

struct SftTokenizeStats {
  int64_t truncated = 0;  // cut at max_len, still used
  int64_t dropped = 0;    // the prompt alone fills max_len: no answer token would remain
};

// Throws mf::Error if the template renders a conversation's prompt differently once the answer
// is appended (the answer must extend the prompt for masking to be exact).
SftExamples tokenize_sft(std::span<const SftRecord> records, const Tokenizer& tok, const RenderChat& render,
                         const SftTokenizeOptions& opts, SftTokenizeStats* stats = nullptr);

// One record's tokens and mask (what tokenize_sft does per record, no max_len).
void tokenize_sft_record(const SftRecord& r, const Tokenizer& tok, const RenderChat& render,
                         std::vector<int32_t>& tokens, std::vector<uint8_t>& mask);

// Examples [begin, end) as their own set (same domain list).
SftExamples slice_sft_examples(const SftExamples& ex, size_t begin, size_t end);

// The examples as one int32 stream (for the token cache) and back. Throws mf::Error if the
// stream is inconsistent.
std::vector<int32_t> pack_sft_examples(const SftExamples& ex);
SftExamples unpack_sft_examples(std::span<const int32_t> packed, std::vector<std::string> domains);

}  // namespace mf
