#include "serve/api_error.h"

#include <utility>

namespace mf {

ApiError::ApiError(int status_, std::string message_, std::string type_, std::string param_, std::string code_)
    : status(status_),
      message(std::move(message_)),
      type(std::move(type_)),
      param(std::move(param_)),
      code(std::move(code_)) {}

nlohmann::json ApiError::to_json() const {
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  return {{"error", {{"message", message}, {"type", type}, {"param", or_null(param)}, {"code", or_null(code)}}}};
}

ApiError ApiError::invalid(std::string param, std::string message, std::string code) {
  return {400, std::move(message), "invalid_request_error", std::move(param), std::move(code)};
}

ApiError ApiError::unauthorized(std::string message) {
  return {401, std::move(message), "authentication_error", {}, "invalid_api_key"};
}

ApiError ApiError::not_found(std::string param, std::string message, std::string code) {
  return {404, std::move(message), "not_found_error", std::move(param), std::move(code)};
}

ApiError ApiError::too_large(std::string message) {
  return {413, std::move(message), "invalid_request_error", {}, "request_too_large"};
}

ApiError ApiError::overloaded(std::string message) {
  return {503, std::move(message), "server_error", {}, "overloaded"};
}

ApiError ApiError::internal(std::string message) { return {500, std::move(message), "server_error"}; }

}  // namespace mf
