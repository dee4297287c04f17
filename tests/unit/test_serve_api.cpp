// The request/response layer of moeforge serve: request validation (every refusal names its
// field), the response bodies against literal OpenAI JSON, SSE framing, and OpenAI's penalties.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/version.h"
#include "infer/sampling.h"
#include "serve/api_error.h"
#include "serve/completion_request.h"
#include "serve/openai_json.h"

namespace {

using nlohmann::json;
using mf::ApiError;
using mf::CompletionRequest;

json chat_body(const json& extra = json::object()) {
  json b = {{"model", "smol"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  b.update(extra);
  return b;
}

json completion_body(const json& extra = json::object()) {
  json b = {{"model", "smol"}, {"prompt", "Once upon a time"}};
  b.update(extra);
  return b;
}

// The ApiError a parse throws; a test failure when it throws none.
ApiError refusal(const json& body, bool chat) {
  try {
    if (chat)
      mf::parse_chat_request(body);
    else
      mf::parse_completion_request(body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body.dump();
  return ApiError(0, "", "");
}

struct Refused {
  json extra;          // merged into a valid body
  std::string param;   // the field the error must name
  std::string words;   // a piece of its message
};

void expect_refused(const std::vector<Refused>& cases, bool chat) {
  for (const Refused& c : cases) {
    const json body = chat ? chat_body(c.extra) : completion_body(c.extra);
    ApiError e = refusal(body, chat);
    SCOPED_TRACE(c.extra.dump());
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param, c.param);
    EXPECT_NE(e.message.find(c.words), std::string::npos) << e.message;
  }
}

// ---- ApiError ----

TEST(ServeApiError, JsonShapeWithNulls) {
  EXPECT_EQ(ApiError::invalid("temperature", "bad").to_json(),
            json::parse(R"({"error": {"message": "bad", "type": "invalid_request_error",
                                     "param": "temperature", "code": null}})"));
  EXPECT_EQ(ApiError::unauthorized("no key").to_json(),
            json::parse(R"({"error": {"message": "no key", "type": "authentication_error",
                                     "param": null, "code": "invalid_api_key"}})"));
  EXPECT_EQ(ApiError::not_found("model", "no such model", "model_not_found").to_json(),
            json::parse(R"({"error": {"message": "no such model", "type": "not_found_error",
                                     "param": "model", "code": "model_not_found"}})"));
}

TEST(ServeApiError, NamedConstructorsCarryStatus) {
  EXPECT_EQ(ApiError::invalid("x", "m").status, 400);
  EXPECT_EQ(ApiError::unauthorized("m").status, 401);
  EXPECT_EQ(ApiError::not_found("model", "m").status, 404);
  EXPECT_EQ(ApiError::too_large("m").status, 413);
  EXPECT_EQ(ApiError::overloaded("m").status, 503);
  EXPECT_EQ(ApiError::overloaded("m").type, "server_error");
  EXPECT_EQ(ApiError::internal("m").status, 500);
  ApiError e = ApiError::invalid("x", "the message", "context_length_exceeded");
  EXPECT_STREQ(e.what(), "the message");
  EXPECT_EQ(e.to_json()["error"]["code"], "context_length_exceeded");
  const std::exception& base = e;  // catchable as a std::exception
  EXPECT_STREQ(base.what(), "the message");
}

// ---- chat requests: accepted ----

TEST(ServeChatRequest, DefaultsWhenOnlyMessages) {
  CompletionRequest r = mf::parse_chat_request(json::parse(R"({"messages": [{"role": "user", "content": "hi"}]})"));
  EXPECT_TRUE(r.chat);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "hi");
  EXPECT_EQ(r.model, "");
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);  // OpenAI's documented default
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.0f);
  EXPECT_EQ(r.sampling.seed, 0u);
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_FALSE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 0);
  EXPECT_FLOAT_EQ(r.frequency_penalty, 0.0f);
  EXPECT_FLOAT_EQ(r.presence_penalty, 0.0f);
  EXPECT_FALSE(r.routes);
}

TEST(ServeChatRequest, EveryFieldRead) {
  CompletionRequest r = mf::parse_chat_request(json::parse(R"({
    "model": "smol-moe",
    "messages": [{"role": "developer", "content": "Be brief."},
                 {"role": "system", "content": "S"},
                 {"role": "user", "content": "Hello", "name": "ann"},
                 {"role": "assistant", "content": null},
                 {"role": "assistant", "content": "Hi", "tool_calls": []}],
    "max_tokens": 50, "temperature": 0, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
    "repeat_penalty": 1.1, "seed": -3, "stop": ["\n\n", "END"], "stream": true,
    "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 20,
    "frequency_penalty": -2, "presence_penalty": 1.5, "n": 1, "response_format": {"type": "text"},
    "tools": [], "tool_choice": "none", "logit_bias": {}, "user": "u1", "metadata": {"a": "b"},
    "store": false, "some_future_field": {"x": 1}, "moeforge": {"routes": true}})"));
  ASSERT_EQ(r.messages.size(), 5u);
  EXPECT_EQ(r.messages[0].role, "system");  // developer is the system role's newer name
  EXPECT_EQ(r.messages[0].content, "Be brief.");
  EXPECT_EQ(r.messages[3].role, "assistant");
  EXPECT_EQ(r.messages[3].content, "");
  EXPECT_EQ(r.model, "smol-moe");
  EXPECT_EQ(r.max_tokens, 50);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.1f);
  EXPECT_EQ(r.sampling.seed, uint64_t(int64_t(-3)));
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 20);
  EXPECT_FLOAT_EQ(r.frequency_penalty, -2.0f);
  EXPECT_FLOAT_EQ(r.presence_penalty, 1.5f);
  EXPECT_TRUE(r.routes);
  EXPECT_NO_THROW(mf::Sampler{r.sampling});  // what the parser accepts, the sampler accepts
}

TEST(ServeChatRequest, ContentAsTextParts) {
  CompletionRequest r = mf::parse_chat_request(chat_body({{"messages", json::parse(R"([
    {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]},
    {"role": "user", "content": []}])")}}));
  EXPECT_EQ(r.messages[0].content, "Hello, world");
  EXPECT_EQ(r.messages[1].content, "");
}

TEST(ServeChatRequest, MaxCompletionTokensWins) {
  EXPECT_EQ(mf::parse_chat_request(chat_body({{"max_tokens", 10}, {"max_completion_tokens", 20}})).max_tokens, 20);
  EXPECT_EQ(mf::parse_chat_request(chat_body({{"max_completion_tokens", 7}})).max_tokens, 7);
  EXPECT_EQ(mf::parse_chat_request(chat_body({{"max_tokens", 10}, {"max_completion_tokens", nullptr}})).max_tokens, 10);
  // Both are checked even when one wins.
  expect_refused({{{{"max_tokens", 0}, {"max_completion_tokens", 20}}, "max_tokens", ">= 1"}}, true);
}

TEST(ServeChatRequest, NullMeansAbsentAndStopForms) {
  CompletionRequest r = mf::parse_chat_request(
      chat_body({{"temperature", nullptr}, {"stop", nullptr}, {"seed", nullptr}, {"stream_options", nullptr}}));
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_TRUE(r.stop.empty());
  EXPECT_EQ(mf::parse_chat_request(chat_body({{"stop", "###"}})).stop, std::vector<std::string>{"###"});
  EXPECT_EQ(mf::parse_chat_request(chat_body({{"stop", json::array({"a", "", "b"})}})).stop,
            (std::vector<std::string>{"a", "b"}));  // an empty stop string is ignored
  EXPECT_EQ(mf::parse_chat_request(chat_body({{"seed", 18446744073709551615ull}})).sampling.seed,
            18446744073709551615ull);
  EXPECT_EQ(mf::parse_chat_request(chat_body({{"max_tokens", 99999999999ll}})).max_tokens, INT32_MAX);
}

// ---- chat requests: refused, each naming its field ----

TEST(ServeChatRequest, TypeErrorsNameTheField) {
  expect_refused({
      {{{"temperature", "hot"}}, "temperature", "'temperature' must be a number, got string"},
      {{{"top_p", true}}, "top_p", "'top_p' must be a number, got boolean"},
      {{{"max_tokens", 1.5}}, "max_tokens", "'max_tokens' must be an integer, got a non-integer number"},
      {{{"max_completion_tokens", "9"}}, "max_completion_tokens", "must be an integer"},
      {{{"seed", 1.5}}, "seed", "'seed' must be an integer"},
      {{{"stream", "yes"}}, "stream", "'stream' must be a boolean, got string"},
      {{{"stream", true}, {"stream_options", "x"}}, "stream_options", "must be an object"},
      {{{"stream", true}, {"stream_options", {{"include_usage", 1}}}}, "stream_options.include_usage",
       "must be a boolean"},
      {{{"logprobs", 1}}, "logprobs", "'logprobs' must be a boolean"},
      {{{"logprobs", true}, {"top_logprobs", "3"}}, "top_logprobs", "must be an integer"},
      {{{"stop", 5}}, "stop", "'stop' must be a string or an array of strings"},
      {{{"stop", json::array({"a", 3})}}, "stop[1]", "'stop[1]' must be a string"},
      {{{"model", 3}}, "model", "'model' must be a string"},
      {{{"top_k", 2.5}}, "top_k", "must be an integer"},
      {{{"min_p", "0"}}, "min_p", "must be a number"},
      {{{"repeat_penalty", json::array()}}, "repeat_penalty", "must be a number, got array"},
      {{{"frequency_penalty", "1"}}, "frequency_penalty", "must be a number"},
      {{{"presence_penalty", json::object()}}, "presence_penalty", "must be a number, got object"},
      {{{"n", "1"}}, "n", "'n' must be an integer"},
      {{{"moeforge", true}}, "moeforge", "'moeforge' must be an object"},
      {{{"moeforge", {{"routes", "yes"}}}}, "moeforge.routes", "must be a boolean"},
      {{{"response_format", "json"}}, "response_format", "must be an object"},
      {{{"logit_bias", json::array()}}, "logit_bias", "must be an object"},
  }, true);
}

TEST(ServeChatRequest, RangeErrorsNameTheField) {
  expect_refused({
      {{{"temperature", -0.1}}, "temperature", "in [0, 2]"},
      {{{"temperature", 2.5}}, "temperature", "got 2.5"},
      {{{"top_p", 0}}, "top_p", "in (0, 1]"},
      {{{"top_p", 1.01}}, "top_p", "in (0, 1]"},
      {{{"max_tokens", 0}}, "max_tokens", "'max_tokens' must be >= 1, got 0"},
      {{{"max_completion_tokens", -5}}, "max_completion_tokens", ">= 1"},
      {{{"max_tokens", 18446744073709551615ull}}, "max_tokens", "out of range"},
      {{{"top_k", -1}}, "top_k", "in [0,"},
      {{{"min_p", 1.5}}, "min_p", "in [0, 1]"},
      {{{"repeat_penalty", 0}}, "repeat_penalty", "must be > 0"},
      {{{"frequency_penalty", 2.01}}, "frequency_penalty", "in [-2, 2]"},
      {{{"presence_penalty", -3}}, "presence_penalty", "in [-2, 2]"},
      {{{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs", "in [0, 20]"},
      {{{"logprobs", true}, {"top_logprobs", -1}}, "top_logprobs", "in [0, 20]"},
      {{{"top_logprobs", 2}}, "top_logprobs", "requires 'logprobs'"},
      {{{"logprobs", false}, {"top_logprobs", 2}}, "top_logprobs", "requires 'logprobs'"},
      {{{"stop", json::array({"a", "b", "c", "d", "e"})}}, "stop", "at most 4"},
      {{{"stream_options", {{"include_usage", true}}}}, "stream_options", "only allowed when 'stream' is true"},
      {{{"stream", false}, {"stream_options", {{"include_usage", true}}}}, "stream_options", "only allowed"},
      {{{"n", 2}}, "n", "n > 1 is not supported"},
      {{{"n", 0}}, "n", "'n' must be >= 1"},
  }, true);
}

TEST(ServeChatRequest, UnsupportedFeaturesRefused) {
  expect_refused({
      {{{"response_format", {{"type", "json_object"}}}}, "response_format", "not supported"},
      {{{"response_format", {{"type", "json_schema"}, {"json_schema", json::object()}}}}, "response_format",
       "not supported"},
      {{{"response_format", {{"type", "yaml"}}}}, "response_format.type", "must be one of text"},
      {{{"response_format", json::object()}}, "response_format.type", "must be a string"},
      {{{"tools", json::parse(R"([{"type": "function", "function": {"name": "f"}}])")}}, "tools", "not supported"},
      {{{"tool_choice", "auto"}}, "tool_choice", "not supported"},
      {{{"functions", json::parse(R"([{"name": "f"}])")}}, "functions", "not supported"},
      {{{"function_call", "auto"}}, "function_call", "not supported"},
      {{{"logit_bias", {{"50256", -100}}}}, "logit_bias", "not supported"},
      {{{"moeforge", {{"route", true}}}}, "moeforge.route", "not a moeforge option"},
  }, true);
}

TEST(ServeChatRequest, MessagesValidated) {
  auto msgs = [](const char* text) { return json{{"messages", json::parse(text)}}; };
  expect_refused({
      {{{"messages", nullptr}}, "messages", "'messages' is required"},
      {{{"messages", "hi"}}, "messages", "'messages' must be an array of messages, got string"},
      {{{"messages", json::array()}}, "messages", "must not be empty"},
      {msgs(R"(["hi"])"), "messages[0]", "'messages[0]' must be an object, got string"},
      {msgs(R"([{"content": "hi"}])"), "messages[0].role", "'messages[0].role' is required"},
      {msgs(R"([{"role": 1, "content": "hi"}])"), "messages[0].role", "must be a string, got number"},
      {msgs(R"([{"role": "user", "content": "a"}, {"role": "robot", "content": "hi"}])"), "messages[1].role",
       "must be one of system, user, assistant, developer, got \"robot\""},
      {msgs(R"([{"role": "tool", "content": "42", "tool_call_id": "c1"}])"), "messages[0].role", "tool calling"},
      {msgs(R"([{"role": "user"}])"), "messages[0].content", "'messages[0].content' is required"},
      {msgs(R"([{"role": "user", "content": null}])"), "messages[0].content", "is required"},
      {msgs(R"([{"role": "user", "content": 5}])"), "messages[0].content",
       "must be a string or an array of text parts, got number"},
      {msgs(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])"),
       "messages[0].content", "'messages[0].content[0]' has type \"image_url\": only text parts are supported"},
      {msgs(R"([{"role": "user", "content": [{"type": "text", "text": "a"}, "b"]}])"), "messages[0].content",
       "'messages[0].content[1]' must be an object"},
      {msgs(R"([{"role": "user", "content": [{"text": "a"}]}])"), "messages[0].content", ".type' must be a string"},
      {msgs(R"([{"role": "user", "content": [{"type": "text", "text": 3}]}])"), "messages[0].content",
       "'messages[0].content[0].text' must be a string"},
      {msgs(R"([{"role": "assistant", "content": null, "tool_calls": [{"id": "c1"}]}])"), "messages[0].tool_calls",
       "tool calling"},
  }, true);
}

TEST(ServeChatRequest, BodyMustBeAnObject) {
  for (const json& body : {json::array({1}), json("text"), json(3), json(nullptr)}) {
    ApiError e = refusal(body, true);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "");
    EXPECT_TRUE(e.to_json()["error"]["param"].is_null());
    EXPECT_NE(e.message.find("must be a JSON object"), std::string::npos) << e.message;
  }
}

// ---- completions requests ----

TEST(ServeCompletionRequest, PromptFormsAndDefaults) {
  CompletionRequest r = mf::parse_completion_request(completion_body());
  EXPECT_FALSE(r.chat);
  EXPECT_EQ(r.prompt, "Once upon a time");
  EXPECT_TRUE(r.messages.empty());
  EXPECT_EQ(r.max_tokens, 16);  // the documented default of /v1/completions
  EXPECT_EQ(r.max_tokens, mf::kCompletionDefaultMaxTokens);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FALSE(r.logprobs);
  EXPECT_EQ(mf::parse_completion_request(completion_body({{"prompt", json::array({"one"})}})).prompt, "one");
  EXPECT_EQ(mf::parse_completion_request(completion_body({{"max_tokens", 100}})).max_tokens, 100);
  // The legacy logprobs is a count: 0 still asks for the chosen tokens' log probabilities.
  r = mf::parse_completion_request(completion_body({{"logprobs", 0}}));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 0);
  r = mf::parse_completion_request(completion_body({{"logprobs", 5}, {"echo", false}, {"best_of", 1}, {"suffix", ""}}));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 5);
}

TEST(ServeCompletionRequest, Refusals) {
  expect_refused({
      {{{"prompt", nullptr}}, "prompt", "'prompt' is required"},
      {{{"prompt", 3}}, "prompt", "'prompt' must be a string, got number"},
      {{{"prompt", json::array({"a", "b"})}}, "prompt", "batch prompts are not supported"},
      {{{"prompt", json::array()}}, "prompt", "must not be an empty list"},
      {{{"prompt", json::array({1, 2, 3})}}, "prompt", "token ids is not supported"},
      {{{"prompt", json::array({json::array({1, 2})})}}, "prompt", "token ids is not supported"},
      {{{"prompt", json::array({true})}}, "prompt", "'prompt[0]' must be a string"},
      {{{"logprobs", 6}}, "logprobs", "in [0, 5]"},
      {{{"logprobs", true}}, "logprobs", "'logprobs' must be an integer, got boolean"},
      {{{"max_tokens", 0}}, "max_tokens", ">= 1"},
      {{{"echo", true}}, "echo", "not supported"},
      {{{"best_of", 2}}, "best_of", "not supported"},
      {{{"suffix", "end"}}, "suffix", "not supported"},
      {{{"n", 3}}, "n", "n > 1 is not supported"},
      {{{"temperature", "1"}}, "temperature", "'temperature' must be a number, got string"},
      {{{"stream_options", {{"include_usage", true}}}}, "stream_options", "only allowed"},
      {{{"response_format", {{"type", "json_object"}}}}, "response_format", "not supported"},
  }, false);
  // A completions request does not need messages, and a chat request does not read prompt.
  EXPECT_NO_THROW(mf::parse_completion_request(completion_body({{"messages", 5}})));
  EXPECT_NO_THROW(mf::parse_chat_request(chat_body({{"prompt", 5}})));
}

// ---- response bodies ----

const std::string kFingerprint = std::string("moeforge-") + mf::kVersion;

TEST(ServeOpenAiJson, UsageAndModels) {
  EXPECT_EQ(mf::usage_json(12, 30),
            json::parse(R"({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42})"));
  EXPECT_EQ(mf::models_json({"smol-moe"}, 1700000000), json::parse(R"({"object": "list", "data": [
              {"id": "smol-moe", "object": "model", "created": 1700000000, "owned_by": "moeforge"}]})"));
  EXPECT_EQ(mf::models_json({}, 1), json::parse(R"({"object": "list", "data": []})"));
  EXPECT_EQ(mf::system_fingerprint(), kFingerprint);
}

TEST(ServeOpenAiJson, ChatCompletion) {
  json expected = json::parse(R"({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "smol",
    "system_fingerprint": "FP",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"},
                 "logprobs": null, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})");
  expected["system_fingerprint"] = kFingerprint;
  EXPECT_EQ(mf::chat_completion_json("chatcmpl-1", 1700000000, "smol", "Hello!", "stop", mf::usage_json(5, 2)),
            expected);
}

TEST(ServeOpenAiJson, ChatChunks) {
  json first = json::parse(R"({"id": "c", "object": "chat.completion.chunk", "created": 7, "model": "m",
    "system_fingerprint": "FP",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null,
                 "finish_reason": null}]})");
  first["system_fingerprint"] = kFingerprint;
  EXPECT_EQ(mf::chat_chunk_json("c", 7, "m", "assistant", "", std::nullopt), first);

  json middle = mf::chat_chunk_json("c", 7, "m", std::nullopt, "Hel", std::nullopt);
  EXPECT_EQ(middle["choices"][0]["delta"], json::parse(R"({"content": "Hel"})"));
  EXPECT_FALSE(middle.contains("usage"));

  json last = mf::chat_chunk_json("c", 7, "m", std::nullopt, std::nullopt, "length", nullptr, /*null_usage=*/true);
  EXPECT_EQ(last["choices"], json::parse(R"([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "length"}])"));
  ASSERT_TRUE(last.contains("usage"));
  EXPECT_TRUE(last["usage"].is_null());

  json usage = json::parse(R"({"id": "c", "object": "chat.completion.chunk", "created": 7, "model": "m",
    "system_fingerprint": "FP", "choices": [],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})");
  usage["system_fingerprint"] = kFingerprint;
  EXPECT_EQ(mf::chat_usage_chunk_json("c", 7, "m", mf::usage_json(3, 4)), usage);
}

TEST(ServeOpenAiJson, Completion) {
  json expected = json::parse(R"({
    "id": "cmpl-1", "object": "text_completion", "created": 9, "model": "smol", "system_fingerprint": "FP",
    "choices": [{"text": " there was", "index": 0, "logprobs": null, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}})");
  expected["system_fingerprint"] = kFingerprint;
  EXPECT_EQ(mf::completion_json("cmpl-1", 9, "smol", " there was", "length", mf::usage_json(4, 2)), expected);

  json chunk = json::parse(R"({"id": "cmpl-1", "object": "text_completion", "created": 9, "model": "smol",
    "system_fingerprint": "FP",
    "choices": [{"text": " there", "index": 0, "logprobs": null, "finish_reason": null}]})");
  chunk["system_fingerprint"] = kFingerprint;
  EXPECT_EQ(mf::completion_chunk_json("cmpl-1", 9, "smol", " there", std::nullopt), chunk);
  EXPECT_EQ(mf::completion_chunk_json("cmpl-1", 9, "smol", "", "stop", nullptr, true)["usage"], nullptr);

  json usage = mf::completion_usage_chunk_json("cmpl-1", 9, "smol", mf::usage_json(4, 2));
  EXPECT_EQ(usage["object"], "text_completion");
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["total_tokens"], 6);
}

std::vector<mf::TokenLogprob> two_tokens() {
  return {{"Hi", -0.25f, {{"Hi", -0.25f}, {"Hello", -1.5f}}},
          {"!", -std::numeric_limits<float>::infinity(), {}}};
}

TEST(ServeOpenAiJson, ChatLogprobs) {
  auto tokens = two_tokens();
  EXPECT_EQ(mf::chat_logprobs_json(tokens), json::parse(R"({"content": [
    {"token": "Hi", "logprob": -0.25, "bytes": [72, 105],
     "top_logprobs": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
                      {"token": "Hello", "logprob": -1.5, "bytes": [72, 101, 108, 108, 111]}]},
    {"token": "!", "logprob": -9999.0, "bytes": [33], "top_logprobs": []}]})"));
  json with = mf::chat_completion_json("c", 1, "m", "Hi!", "stop", mf::usage_json(1, 2), mf::chat_logprobs_json(tokens));
  EXPECT_EQ(with["choices"][0]["logprobs"]["content"].size(), 2u);
  json chunk = mf::chat_chunk_json("c", 1, "m", std::nullopt, "Hi", std::nullopt,
                                   mf::chat_logprobs_json(std::span(tokens).first(1)));
  EXPECT_EQ(chunk["choices"][0]["logprobs"]["content"][0]["token"], "Hi");
}

TEST(ServeOpenAiJson, CompletionLogprobs) {
  auto tokens = two_tokens();
  tokens[0].top.push_back({"Hi", -3.0f});  // a second alternative with the same text: the first stays
  EXPECT_EQ(mf::completion_logprobs_json(tokens), json::parse(R"({
    "tokens": ["Hi", "!"], "token_logprobs": [-0.25, -9999.0],
    "top_logprobs": [{"Hi": -0.25, "Hello": -1.5}, {}], "text_offset": [0, 2]})"));
  EXPECT_EQ(mf::completion_logprobs_json(tokens, 10)["text_offset"], json::parse("[10, 12]"));
  EXPECT_EQ(mf::completion_logprobs_json({}), json::parse(
      R"({"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []})"));
}

TEST(ServeOpenAiJson, SseFraming) {
  EXPECT_EQ(mf::sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(mf::sse_done(), "data: [DONE]\n\n");
  // One event is one line of data: a newline in generated text is escaped, never raw.
  std::string ev = mf::sse_event(mf::chat_chunk_json("c", 1, "m", std::nullopt, "a\nb\r\n", std::nullopt));
  EXPECT_EQ(ev.rfind("data: ", 0), 0u);
  EXPECT_EQ(ev.find('\n'), ev.size() - 2);
  EXPECT_EQ(ev.find('\r'), std::string::npos);
  EXPECT_EQ(ev.substr(ev.size() - 2), "\n\n");
  EXPECT_EQ(json::parse(ev.substr(6))["choices"][0]["delta"]["content"], "a\nb\r\n");
  ApiError e = ApiError::overloaded("queue full");
  EXPECT_EQ(json::parse(mf::sse_event(e.to_json()).substr(6)), e.to_json());
}

TEST(ServeOpenAiJson, InvalidUtf8DoesNotThrow) {
  const std::string cut = "caf\xC3";  // a token that ends inside a two-byte character
  std::vector<mf::TokenLogprob> tokens = {{cut, -0.5f, {{"\xFF", -1.0f}}}};
  std::string text;
  EXPECT_NO_THROW(text = mf::json_text(mf::chat_completion_json("c", 1, "m", cut, "stop", mf::usage_json(1, 1),
                                                                mf::chat_logprobs_json(tokens))));
  json back = json::parse(text);
  EXPECT_EQ(back["choices"][0]["message"]["content"], "caf\xEF\xBF\xBD");  // U+FFFD
  EXPECT_EQ(back["choices"][0]["logprobs"]["content"][0]["bytes"], json::parse("[99, 97, 102, 195]"));
  EXPECT_NO_THROW(mf::sse_event(mf::chat_chunk_json("c", 1, "m", std::nullopt, cut, std::nullopt)));
  EXPECT_NO_THROW(mf::sse_event(mf::completion_chunk_json("c", 1, "m", cut, std::nullopt,
                                                          mf::completion_logprobs_json(tokens))));  // as a key too
  EXPECT_NO_THROW(mf::json_text(ApiError::invalid("stop", "bad \xC3").to_json()));
}

// ---- penalties ----

TEST(ServePenalties, OpenAiFormula) {
  std::vector<float> logits = {1.0f, -1.0f, 2.0f, 0.5f, 3.0f};
  // token 0 three times, token 1 once, token 4 never; bad ids ignored
  std::vector<int32_t> generated = {0, 1, 0, 0, 99, -1};
  mf::apply_frequency_presence_penalties(logits, generated, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(logits[0], 1.0f - 3 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[1], -1.0f - 1 * 0.5f - 0.25f);  // subtracts on negative logits too
  EXPECT_FLOAT_EQ(logits[2], 2.0f);
  EXPECT_FLOAT_EQ(logits[3], 0.5f);
  EXPECT_FLOAT_EQ(logits[4], 3.0f);

  std::vector<float> l2 = {1.0f, 1.0f};
  mf::apply_frequency_presence_penalties(l2, std::vector<int32_t>{1, 1}, -1.0f, -2.0f);  // negative: encourage
  EXPECT_FLOAT_EQ(l2[0], 1.0f);
  EXPECT_FLOAT_EQ(l2[1], 1.0f + 2 * 1.0f + 2.0f);

  std::vector<float> l3 = {1.0f, 2.0f};
  mf::apply_frequency_presence_penalties(l3, std::vector<int32_t>{0, 1}, 0.0f, 0.0f);
  EXPECT_EQ(l3, (std::vector<float>{1.0f, 2.0f}));
  mf::apply_frequency_presence_penalties(l3, {}, 1.0f, 1.0f);
  EXPECT_EQ(l3, (std::vector<float>{1.0f, 2.0f}));
}

}  // namespace
