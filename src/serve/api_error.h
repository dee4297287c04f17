// The one error type of the HTTP API: an HTTP status plus the fields of OpenAI's error object,
// so whatever rejects a request (parsing, authentication, the queue) says it the way OpenAI
// clients already know how to read.
#pragma once
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

namespace mf {

struct ApiError : std::exception {
  int status = 400;     // HTTP status: 400, 401, 404, 413, 500, 503
  std::string message;  // for people: names the field and what was wrong with it
  std::string type;     // "invalid_request_error" | "authentication_error" | "not_found_error" | "server_error"
  std::string param;    // the offending request field ("messages[1].content"); empty -> null
  std::string code;     // machine-readable reason ("context_length_exceeded"); empty -> null

  ApiError(int status, std::string message, std::string type, std::string param = {}, std::string code = {});

  const char* what() const noexcept override { return message.c_str(); }

  // Exactly {"error": {"message": ..., "type": ..., "param": ... or null, "code": ... or null}}.
  nlohmann::json to_json() const;

  // 400 invalid_request_error naming `param` (may be empty when no single field is at fault).
  static ApiError invalid(std::string param, std::string message, std::string code = {});
  // 401 authentication_error, code "invalid_api_key".
  static ApiError unauthorized(std::string message);
  // 404 not_found_error naming `param` ("model"); code e.g. "model_not_found".
  static ApiError not_found(std::string param, std::string message, std::string code = {});
  // 413 invalid_request_error, code "request_too_large".
  static ApiError too_large(std::string message);
  // 503 server_error, code "overloaded"; the server adds Retry-After.
  static ApiError overloaded(std::string message);
  // 500 server_error: a failure of ours, not of the request.
  static ApiError internal(std::string message);
};

}  // namespace mf
