// Instruction data for `train` (SFT recipes) and `eval`: unified JSONL records, filtered by
// domain, rendered with the model's chat template, tokenized with the answer-only loss mask,
// and cached as a token shard so a second run does not tokenize again.
#pragma once
#include <string>
#include <vector>

#include "data/sft_tokenize.h"
#include "chat/chat_template.h"

namespace mf {

struct SftInputOptions {
  std::vector<std::string> domains;  // keep only these (case-insensitive); empty = all
  int max_per_domain = 0;            // keep the first N records of each domain; 0 = all
  bool skip_bad = false;
  int max_len = 1024;                // tokens per sequence (longer ones are cut)
  AssistantTurns assistant_turns = AssistantTurns::all;  // data.loss_on: conversations' scored turns
  std::string tokenizer_source;      // where the tokenizer came from (part of the cache key)
  bool quiet = false;
};

RenderChat chat_renderer(const ChatTemplate& tmpl);

// Throws mf::Error (file:line for bad records unless skipping) and when nothing is left.
SftExamples load_sft_examples(const std::vector<std::string>& files, const Tokenizer& tok, const ChatTemplate& tmpl,
                              const SftInputOptions& opts);

}  // namespace mf
