// The bodies moeforge serve answers with, shaped as the OpenAI API reference documents them
// (chat.completion, chat.completion.chunk, text_completion, the model list, both logprobs
// formats), so the server fills in values and never spells a field name itself. Extension
// fields (moeforge's routes) are added by the caller to the object these return.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mf {

// "moeforge-<version>": the system_fingerprint of every response.
std::string system_fingerprint();

// {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
nlohmann::json usage_json(int prompt_tokens, int completion_tokens);

// One generated token's log probability and its most likely alternatives (most likely first).
// `token` is the token's own bytes, which need not be whole UTF-8 characters.
struct TopLogprob {
  std::string token;
  float logprob = 0;
};
struct TokenLogprob {
  std::string token;
  float logprob = 0;
  std::vector<TopLogprob> top;
};

// Chat format: {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob",
// "bytes"}]}]}. A log probability of -inf (JSON has none) is written as -9999.0, as OpenAI does.
nlohmann::json chat_logprobs_json(std::span<const TokenLogprob> tokens);
// Legacy completions format: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}],
// "text_offset"}; offsets count bytes from `text_offset` (a stream's chunks continue where the
// previous one ended). Alternatives whose text repeats a more likely one are dropped (JSON keys).
nlohmann::json completion_logprobs_json(std::span<const TokenLogprob> tokens, size_t text_offset = 0);

// Non-streamed /v1/chat/completions answer. `usage` from usage_json, `logprobs` from
// chat_logprobs_json or null. finish_reason "stop" | "length".
nlohmann::json chat_completion_json(const std::string& id, int64_t created, const std::string& model,
                                    const std::string& text, const std::string& finish_reason,
                                    const nlohmann::json& usage, const nlohmann::json& logprobs = nullptr);

// One streamed chat chunk. The first carries role "assistant" (and usually no content), the
// following ones content, the last one finish_reason. With stream_options.include_usage every
// chunk carries "usage": null (`null_usage`) and chat_usage_chunk_json ends the stream.
nlohmann::json chat_chunk_json(const std::string& id, int64_t created, const std::string& model,
                               const std::optional<std::string>& delta_role,
                               const std::optional<std::string>& delta_content,
                               const std::optional<std::string>& finish_reason,
                               const nlohmann::json& logprobs = nullptr, bool null_usage = false);
// The chunk after the last one when include_usage was asked for: "choices": [] and the usage.
nlohmann::json chat_usage_chunk_json(const std::string& id, int64_t created, const std::string& model,
                                     const nlohmann::json& usage);

// Non-streamed /v1/completions answer; `logprobs` from completion_logprobs_json or null.
nlohmann::json completion_json(const std::string& id, int64_t created, const std::string& model,
                               const std::string& text, const std::string& finish_reason,
                               const nlohmann::json& usage, const nlohmann::json& logprobs = nullptr);
// One streamed completions chunk (object "text_completion", as OpenAI streams it).
nlohmann::json completion_chunk_json(const std::string& id, int64_t created, const std::string& model,
                                     const std::string& text, const std::optional<std::string>& finish_reason,
                                     const nlohmann::json& logprobs = nullptr, bool null_usage = false);
nlohmann::json completion_usage_chunk_json(const std::string& id, int64_t created, const std::string& model,
                                           const nlohmann::json& usage);

// GET /v1/models: {"object": "list", "data": [{"id", "object": "model", "created", "owned_by": "moeforge"}]}
nlohmann::json models_json(const std::vector<std::string>& model_ids, int64_t created);

// JSON text of a response body. Generated text may hold invalid UTF-8 (a token cut inside a
// character); it becomes U+FFFD instead of making dump() throw.
std::string json_text(const nlohmann::json& j);
// A Server-Sent Event: "data: " + json_text(j) + "\n\n".
std::string sse_event(const nlohmann::json& j);
// The event that ends every stream: "data: [DONE]\n\n".
std::string sse_done();

}  // namespace mf
