// Reading a JSON file as untrusted input, in one place: every error names the file.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace mf {

// The parsed document; throws mf::Error "PATH: cannot open ..." or "PATH: not valid JSON: ...".
nlohmann::json read_json_file(const std::string& path);

// As read_json_file, or null when the file does not exist.
nlohmann::json read_json_file_if_present(const std::string& path);

// v as JSON text for an error message: invalid UTF-8 replaced by U+FFFD (dump() would throw on
// it), cut to about 200 characters.
std::string json_excerpt(const nlohmann::json& v);

}  // namespace mf
