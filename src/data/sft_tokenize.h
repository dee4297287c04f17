// Instruction records -> token sequences for supervised fine-tuning: each record is rendered
// with the target model's own chat template, and only answer tokens carry loss: the record's
// own assistant turn (its end-of-turn marker included) and, for a whole conversation from chat
// data (SftRecord::loss_on_history) unless only the last turn is asked for, every assistant turn
// of its history too. System and user turns and the template's scaffolding carry none.
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

// Which assistant turns of a conversation record carry loss (the recipe's data.loss_on).
enum class AssistantTurns {
  all,   // all_assistant: every assistant turn of a loss_on_history record
  last,  // last_assistant: the record's own (last) turn only, as for every other record
};
// The recipe's spelling, and back (mf::Error listing both names otherwise).
const char* assistant_turns_name(AssistantTurns turns);
AssistantTurns assistant_turns_from_name(const std::string& name);

struct SftTokenizeOptions {
  int max_len = 1024;  // longer sequences are cut at max_len (answer tail lost)
  AssistantTurns assistant_turns = AssistantTurns::all;
};

struct SftTokenizeStats {
  int64_t truncated = 0;  // cut at max_len, still used
  int64_t dropped = 0;    // the prompt alone fills max_len: no answer token would remain
};

// Throws mf::Error if the template renders a conversation's prompt differently once the answer
// is appended (the answer must extend the prompt for masking to be exact).
SftExamples tokenize_sft(std::span<const SftRecord> records, const Tokenizer& tok, const RenderChat& render,
                         const SftTokenizeOptions& opts, SftTokenizeStats* stats = nullptr);

// One record's tokens and mask (what tokenize_sft does per record, no max_len). A scored
// assistant turn is the text the template adds for it after the generation prompt (its content,
// its end-of-turn marker and the line break the template writes after it); each such span and
// each span between them is encoded on its own, as generation would produce them.
void tokenize_sft_record(const SftRecord& r, const Tokenizer& tok, const RenderChat& render,
                         std::vector<int32_t>& tokens, std::vector<uint8_t>& mask,
                         AssistantTurns assistant_turns = AssistantTurns::all);

// Whether any record's mask depends on AssistantTurns (a loss_on_history record with an
// assistant turn in its history).
bool has_scored_history(std::span<const SftRecord> records);

// Examples [begin, end) as their own set (same domain list).
SftExamples slice_sft_examples(const SftExamples& ex, size_t begin, size_t end);

// The examples as one int32 stream (for the token cache) and back. Throws mf::Error if the
// stream is inconsistent.
std::vector<int32_t> pack_sft_examples(const SftExamples& ex);
SftExamples unpack_sft_examples(std::span<const int32_t> packed, std::vector<std::string> domains);

}  // namespace mf
