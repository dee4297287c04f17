#include "serve/completion_request.h"

#include <climits>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "io/json_file.h"
#include "serve/api_error.h"

namespace mf {
namespace {

using nlohmann::json;

[[noreturn]] void refuse(const std::string& param, const std::string& message) {
  throw ApiError::invalid(param, message);
}

// What a value is, in the words of an error message ("got string"); a fraction is told apart
// from a number so that "must be an integer, got number" never reads as a contradiction.
std::string kind(const json& v) {
  if (v.is_number_float()) return "a non-integer number";
  return v.type_name();
}

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& v) {
  refuse(param, cat("'", param, "' must be ", expected, ", got ", kind(v)));
}

// A null field is an absent one: clients serialise unset options as null.
const json* field(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number(const json& obj, const char* key) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(key, "a number", *v);
  return v->get<double>();
}

std::optional<int64_t> integer(const json& obj, const std::string& key, const std::string& param) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) wrong_type(param, "an integer", *v);
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
    refuse(param, cat("'", param, "' is out of range, got ", json_excerpt(*v)));
  return v->get<int64_t>();
}
std::optional<int64_t> integer(const json& obj, const char* key) { return integer(obj, key, key); }

std::optional<bool> boolean(const json& obj, const std::string& key, const std::string& param) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(param, "a boolean", *v);
  return v->get<bool>();
}
std::optional<bool> boolean(const json& obj, const char* key) { return boolean(obj, key, key); }

std::optional<std::string> string(const json& obj, const char* key) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(key, "a string", *v);
  return v->get<std::string>();
}

// `value` within [lo, hi] (open at lo when `open_lo`), or a 400 naming the field and the range.
double in_range(const char* key, double value, double lo, double hi, bool open_lo = false) {
  const bool ok = (open_lo ? value > lo : value >= lo) && value <= hi;
  if (!ok) refuse(key, cat("'", key, "' must be ", open_lo ? "in (" : "in [", lo, ", ", hi, "], got ", value));
  return value;
}

int int_in_range(const std::string& param, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) refuse(param, cat("'", param, "' must be in [", lo, ", ", hi, "], got ", value));
  return int(value);
}

// max_tokens / max_completion_tokens: a count of tokens to generate, at least one.
std::optional<int> token_budget(const json& body, const char* key) {
  auto v = integer(body, key);
  if (!v) return std::nullopt;
  if (*v < 1) refuse(key, cat("'", key, "' must be >= 1, got ", *v));
  return int(std::min<int64_t>(*v, INT_MAX));  // more than any context holds: "until it is full"
}

ChatMessage parse_message(const json& m, size_t i) {
  const std::string at = cat("messages[", i, "]");
  if (!m.is_object()) wrong_type(at, "an object", m);
  ChatMessage out;
  const json* role = field(m, "role");
  if (!role) refuse(at + ".role", cat("'", at, ".role' is required"));
  if (!role->is_string()) wrong_type(at + ".role", "a string", *role);
  out.role = role->get<std::string>();
  if (out.role == "developer") out.role = "system";  // OpenAI's newer name for the system role
  if (out.role == "tool" || out.role == "function")
    refuse(at + ".role", cat("'", at, ".role' \"", out.role, "\" is not supported: moeforge serves no tool calling"));
  if (out.role != "system" && out.role != "user" && out.role != "assistant")
    refuse(at + ".role",
           cat("'", at, ".role' must be one of system, user, assistant, developer, got ", json_excerpt(*role)));
  if (const json* calls = field(m, "tool_calls"); calls && !(calls->is_array() && calls->empty()))
    refuse(at + ".tool_calls", cat("'", at, ".tool_calls' is not supported: moeforge serves no tool calling"));

  const std::string content_at = at + ".content";
  const json* content = field(m, "content");
  if (!content) {
    // OpenAI lets an assistant turn have null content (it then carried tool calls or a refusal).
    if (out.role != "assistant") refuse(content_at, cat("'", content_at, "' is required"));
    return out;
  }
  if (content->is_string()) {
    out.content = content->get<std::string>();
    return out;
  }
  if (!content->is_array()) wrong_type(content_at, "a string or an array of text parts", *content);
  for (size_t j = 0; j < content->size(); ++j) {
    const json& part = (*content)[j];
    const std::string part_at = cat(content_at, "[", j, "]");
    if (!part.is_object()) refuse(content_at, cat("'", part_at, "' must be an object, got ", kind(part)));
    const json* type = field(part, "type");
    if (!type || !type->is_string())
      refuse(content_at, cat("'", part_at, ".type' must be a string"));
    if (type->get<std::string>() != "text")
      refuse(content_at, cat("'", part_at, "' has type ", json_excerpt(*type),
                             ": only text parts are supported (the model reads text only)"));
    const json* text = field(part, "text");
    if (!text || !text->is_string()) refuse(content_at, cat("'", part_at, ".text' must be a string"));
    out.content += text->get<std::string>();
  }
  return out;
}

std::vector<ChatMessage> parse_messages(const json& body) {
  const json* m = field(body, "messages");
  if (!m) refuse("messages", "'messages' is required");
  if (!m->is_array()) wrong_type("messages", "an array of messages", *m);
  if (m->empty()) refuse("messages", "'messages' must not be empty");
  std::vector<ChatMessage> out;
  out.reserve(m->size());
  for (size_t i = 0; i < m->size(); ++i) out.push_back(parse_message((*m)[i], i));
  return out;
}

std::string parse_prompt(const json& body) {
  const json* p = field(body, "prompt");
  if (!p) refuse("prompt", "'prompt' is required");
  if (p->is_string()) return p->get<std::string>();
  if (!p->is_array()) wrong_type("prompt", "a string", *p);
  if (p->empty()) refuse("prompt", "'prompt' must not be an empty list");
  const json& first = (*p)[0];
  if (first.is_number_integer() || first.is_array())
    refuse("prompt", "'prompt' as token ids is not supported: send the text");
  if (p->size() > 1) refuse("prompt", cat("batch prompts are not supported: 'prompt' holds ", p->size(),
                                          " strings; send one prompt per request"));
  if (!first.is_string()) refuse("prompt", cat("'prompt[0]' must be a string, got ", kind(first)));
  return first.get<std::string>();
}

std::vector<std::string> parse_stop(const json& body) {
  std::vector<std::string> out;
  const json* s = field(body, "stop");
  if (!s) return out;
  auto add = [&](const std::string& text) {
    if (!text.empty()) out.push_back(text);  // an empty stop string would match everywhere: ignored
  };
  if (s->is_string()) {
    add(s->get<std::string>());
    return out;
  }
  if (!s->is_array()) wrong_type("stop", "a string or an array of strings", *s);
  if (s->size() > 4) refuse("stop", cat("'stop' holds at most 4 strings, got ", s->size()));
  for (size_t i = 0; i < s->size(); ++i) {
    if (!(*s)[i].is_string()) wrong_type(cat("stop[", i, "]"), "a string", (*s)[i]);
    add((*s)[i].get<std::string>());
  }
  return out;
}

void parse_sampling(const json& body, SamplingParams& s) {
  // OpenAI's documented defaults: temperature 1 and top_p 1 (plain sampling from the model's
  // distribution); moeforge's own extra knobs default to off. The seed defaults to 0 so an
  // unseeded request is reproducible too.
  s = SamplingParams{};
  s.temperature = float(in_range("temperature", number(body, "temperature").value_or(1.0), 0, 2));
  s.top_p = float(in_range("top_p", number(body, "top_p").value_or(1.0), 0, 1, /*open_lo=*/true));
  if (auto k = integer(body, "top_k")) s.top_k = int_in_range("top_k", *k, 0, INT_MAX);
  s.min_p = float(in_range("min_p", number(body, "min_p").value_or(0.0), 0, 1));
  if (auto r = number(body, "repeat_penalty")) {
    if (!(*r > 0)) refuse("repeat_penalty", cat("'repeat_penalty' must be > 0, got ", *r));
    s.repeat_penalty = float(*r);
  }
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) wrong_type("seed", "an integer", *seed);
    // Any 64-bit integer is a seed; a negative one keeps its bits.
    s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : uint64_t(seed->get<int64_t>());
  }
}

// Known fields that would change the answer in ways moeforge cannot honour: refused by name.
void refuse_unsupported(const json& body) {
  if (auto n = integer(body, "n")) {
    if (*n < 1) refuse("n", cat("'n' must be >= 1, got ", *n));
    if (*n > 1) refuse("n", "n > 1 is not supported: send one request per completion");
  }
  if (const json* rf = field(body, "response_format")) {
    if (!rf->is_object()) wrong_type("response_format", "an object", *rf);
    const json* type = field(*rf, "type");
    if (!type || !type->is_string()) refuse("response_format.type", "'response_format.type' must be a string");
    const std::string t = type->get<std::string>();
    if (t == "json_object" || t == "json_schema")
      refuse("response_format", cat("response_format type \"", t,
                                    "\" is not supported: moeforge does not constrain output to JSON"));
    if (t != "text")
      refuse("response_format.type",
             cat("'response_format.type' must be one of text, json_object, json_schema, got ", json_excerpt(*type)));
  }
  // Empty tool lists and tool_choice "none" ask for nothing, and some clients always send them.
  for (const char* key : {"tools", "functions"})
    if (const json* v = field(body, key); v && !(v->is_array() && v->empty()))
      refuse(key, cat("'", key, "' is not supported: moeforge serves no tool calling"));
  for (const char* key : {"tool_choice", "function_call"})
    if (const json* v = field(body, key); v && *v != "none")
      refuse(key, cat("'", key, "' is not supported: moeforge serves no tool calling"));
  if (const json* bias = field(body, "logit_bias")) {
    if (!bias->is_object()) wrong_type("logit_bias", "an object", *bias);
    if (!bias->empty()) refuse("logit_bias", "'logit_bias' is not supported");
  }
}

// Fields both endpoints share.
CompletionRequest parse_common(const json& body, bool chat) {
  if (!body.is_object()) refuse("", cat("the request body must be a JSON object, got ", kind(body)));
  CompletionRequest r;
  r.chat = chat;
  refuse_unsupported(body);
  r.model = string(body, "model").value_or("");
  parse_sampling(body, r.sampling);
  r.stop = parse_stop(body);
  r.frequency_penalty = float(in_range("frequency_penalty", number(body, "frequency_penalty").value_or(0), -2, 2));
  r.presence_penalty = float(in_range("presence_penalty", number(body, "presence_penalty").value_or(0), -2, 2));

  r.stream = boolean(body, "stream").value_or(false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    if (!r.stream) refuse("stream_options", "'stream_options' is only allowed when 'stream' is true");
    r.include_usage = boolean(*so, "include_usage", "stream_options.include_usage").value_or(false);
  }

  if (const json* ext = field(body, "moeforge")) {
    if (!ext->is_object()) wrong_type("moeforge", "an object", *ext);
    for (const auto& [key, value] : ext->items())  // our own extension: a typo is an error
      if (key != "routes") refuse("moeforge." + key, cat("'moeforge.", key, "' is not a moeforge option (known: routes)"));
    r.routes = boolean(*ext, "routes", "moeforge.routes").value_or(false);
  }
  return r;
}

}  // namespace

CompletionRequest parse_chat_request(const nlohmann::json& body) {
  CompletionRequest r = parse_common(body, /*chat=*/true);
  r.messages = parse_messages(body);
  auto max_tokens = token_budget(body, "max_tokens");
  auto max_completion_tokens = token_budget(body, "max_completion_tokens");  // the newer name wins
  r.max_tokens = max_completion_tokens.value_or(max_tokens.value_or(-1));

  r.logprobs = boolean(body, "logprobs").value_or(false);
  if (auto top = integer(body, "top_logprobs")) {
    r.top_logprobs = int_in_range("top_logprobs", *top, 0, 20);
    if (!r.logprobs) refuse("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
  }
  return r;
}

CompletionRequest parse_completion_request(const nlohmann::json& body) {
  CompletionRequest r = parse_common(body, /*chat=*/false);
  r.prompt = parse_prompt(body);
  r.max_tokens = token_budget(body, "max_tokens").value_or(kCompletionDefaultMaxTokens);

  // The legacy endpoint's logprobs is a count of alternatives; 0 still returns the chosen
  // tokens' own log probabilities.
  if (auto n = integer(body, "logprobs")) {
    r.logprobs = true;
    r.top_logprobs = int_in_range("logprobs", *n, 0, 5);
  }
  if (boolean(body, "echo").value_or(false)) refuse("echo", "'echo' is not supported");
  if (auto best_of = integer(body, "best_of")) {
    if (*best_of < 1) refuse("best_of", cat("'best_of' must be >= 1, got ", *best_of));
    if (*best_of > 1) refuse("best_of", "best_of > 1 is not supported");
  }
  if (!string(body, "suffix").value_or("").empty()) refuse("suffix", "'suffix' is not supported");
  return r;
}

}  // namespace mf
