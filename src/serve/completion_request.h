// An OpenAI chat or completions request body turned into what the engine runs, validated as
// strictly as OpenAI's own API: a wrong type or value is a 400 naming the field, never a silent
// default. Unknown fields are ignored (clients send many), but the known ones that would change
// the answer and that moeforge cannot honour (n > 1, tools, JSON mode, logit_bias, echo, ...)
// are refused, so nobody gets an answer that silently ignores what they asked for.
// Every field, its range and default: docs/serve.md, "Request fields".
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "infer/sampling.h"

namespace mf {

struct CompletionRequest {
  bool chat = false;                  // /v1/chat/completions (messages) or /v1/completions (prompt)
  std::vector<ChatMessage> messages;  // chat: roles system/user/assistant ("developer" -> system)
  std::string prompt;                 // completions
  std::string model;                  // as sent; empty when absent (the server's one model)
  int max_tokens = -1;                // -1: until the context is full (chat default)
  SamplingParams sampling;            // temperature defaults to OpenAI's 1.0; seed to 0
  std::vector<std::string> stop;      // at most 4, none empty
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  bool logprobs = false;
  int top_logprobs = 0;               // alternatives per token (chat 0..20, completions 0..5)
  float frequency_penalty = 0;        // OpenAI's penalties, [-2, 2]: apply_frequency_presence_penalties
  float presence_penalty = 0;
  bool routes = false;                // moeforge extension: "moeforge": {"routes": true}
};

// /v1/completions' documented default for max_tokens (chat has none: until the context is full).
inline constexpr int kCompletionDefaultMaxTokens = 16;

// Both throw ApiError 400 whose `param` names the offending field ("messages[2].content").
CompletionRequest parse_chat_request(const nlohmann::json& body);
CompletionRequest parse_completion_request(const nlohmann::json& body);

}  // namespace mf
