#include "serve/openai_json.h"

#include <cmath>

#include "core/version.h"

namespace mf {
namespace {

using nlohmann::json;

// OpenAI writes an impossible token's log probability as -9999.0; JSON has no -inf.
double finite_logprob(float lp) { return std::isfinite(lp) ? double(lp) : -9999.0; }

json bytes_of(const std::string& s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(int(c));
  return out;
}

json opt(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

// The fields every response object starts with.
json head(const char* object, const std::string& id, int64_t created, const std::string& model) {
  return {{"id", id},
          {"object", object},
          {"created", created},
          {"model", model},
          {"system_fingerprint", system_fingerprint()}};
}

}  // namespace

std::string system_fingerprint() { return std::string("moeforge-") + kVersion; }

json usage_json(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json chat_logprobs_json(std::span<const TokenLogprob> tokens) {
  json content = json::array();
  for (const TokenLogprob& t : tokens) {
    json top = json::array();
    for (const TopLogprob& alt : t.top)
      top.push_back({{"token", alt.token}, {"logprob", finite_logprob(alt.logprob)}, {"bytes", bytes_of(alt.token)}});
    content.push_back({{"token", t.token},
                       {"logprob", finite_logprob(t.logprob)},
                       {"bytes", bytes_of(t.token)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

json completion_logprobs_json(std::span<const TokenLogprob> tokens, size_t text_offset) {
  json out = {{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (const TokenLogprob& t : tokens) {
    out["tokens"].push_back(t.token);
    out["token_logprobs"].push_back(finite_logprob(t.logprob));
    json top = json::object();
    for (const TopLogprob& alt : t.top)
      if (!top.contains(alt.token)) top[alt.token] = finite_logprob(alt.logprob);
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(text_offset);
    text_offset += t.token.size();
  }
  return out;
}

json chat_completion_json(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                          const std::string& finish_reason, const json& usage, const json& logprobs) {
  json out = head("chat.completion", id, created, model);
  out["choices"] = json::array({{{"index", 0},
                                 {"message", {{"role", "assistant"}, {"content", text}}},
                                 {"logprobs", logprobs},
                                 {"finish_reason", finish_reason}}});
  out["usage"] = usage;
  return out;
}

json chat_chunk_json(const std::string& id, int64_t created, const std::string& model,
                     const std::optional<std::string>& delta_role, const std::optional<std::string>& delta_content,
                     const std::optional<std::string>& finish_reason, const json& logprobs, bool null_usage) {
  json delta = json::object();
  if (delta_role) delta["role"] = *delta_role;
  if (delta_content) delta["content"] = *delta_content;
  json out = head("chat.completion.chunk", id, created, model);
  out["choices"] = json::array(
      {{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", logprobs}, {"finish_reason", opt(finish_reason)}}});
  if (null_usage) out["usage"] = nullptr;
  return out;
}

json chat_usage_chunk_json(const std::string& id, int64_t created, const std::string& model, const json& usage) {
  json out = head("chat.completion.chunk", id, created, model);
  out["choices"] = json::array();
  out["usage"] = usage;
  return out;
}

json completion_json(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                     const std::string& finish_reason, const json& usage, const json& logprobs) {
  json out = head("text_completion", id, created, model);
  out["choices"] = json::array(
      {{{"text", text}, {"index", 0}, {"logprobs", logprobs}, {"finish_reason", finish_reason}}});
  out["usage"] = usage;
  return out;
}

json completion_chunk_json(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                           const std::optional<std::string>& finish_reason, const json& logprobs, bool null_usage) {
  json out = head("text_completion", id, created, model);
  out["choices"] = json::array(
      {{{"text", text}, {"index", 0}, {"logprobs", logprobs}, {"finish_reason", opt(finish_reason)}}});
  if (null_usage) out["usage"] = nullptr;
  return out;
}

json completion_usage_chunk_json(const std::string& id, int64_t created, const std::string& model, const json& usage) {
  json out = head("text_completion", id, created, model);
  out["choices"] = json::array();
  out["usage"] = usage;
  return out;
}

json models_json(const std::vector<std::string>& model_ids, int64_t created) {
  json data = json::array();
  for (const std::string& id : model_ids)
    data.push_back({{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "moeforge"}});
  return {{"object", "list"}, {"data", std::move(data)}};
}

std::string json_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + json_text(j) + "\n\n"; }

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace mf
