// Reading a JSON file as untrusted input, in one place: every error names the file.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace mf {

// The parsed document; throws mf::Error "PATH: cannot open ..." or "PATH: not valid JSON: ...".
nlohmann::json read_json_file(const std::string& path);

// As read_json_file, or null when the file does not exist.
nlohmann::json read_json_file_if_present(const std::string& path);

}  // namespace mf
