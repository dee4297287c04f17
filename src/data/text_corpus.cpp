#include "data/text_corpus.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/text_check.h"

namespace mf {

std::vector<std::string> read_text_documents(const std::vector<std::string>& files) {
  std::vector<std::string> docs;
  for (const std::string& f : files) {
    std::error_code ec;
    MF_CHECK(std::filesystem::exists(f, ec), f, ": no such file");
    MF_CHECK(std::filesystem::is_regular_file(f, ec), f, ": not a file");
    if (std::filesystem::path(f).extension() != ".jsonl") {
      std::string text = read_text_file(f);
      check_text(text, f);
      MF_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, f, ": no text in the file");
      docs.push_back(std::move(text));
      continue;
    }
    std::ifstream in(f);
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        fail(f, ":", n, ": malformed JSON (", e.what(), ")");
      }
      // Chat-format records reach here when a recipe names a dataset file as it was downloaded.
      const bool chat = j.is_object() && (j.contains("messages") || j.contains("conversations") ||
                                          (j.contains("prompt") && j.contains("completion")));
      MF_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), f, ":", n,
               ": expected an object with a string field \"text\"",
               chat ? " (this is chat-format data: `moeforge data convert` it first, then train on the converted "
                      "file; docs/data.md)"
                    : "");
      docs.push_back(j["text"].get<std::string>());
    }
  }
  return docs;
}

std::vector<int32_t> tokenize_documents(const Tokenizer& tok, const std::vector<std::string>& docs) {
  std::vector<int32_t> ids;
  for (const std::string& d : docs) {
    const std::vector<int32_t> part = tok.encode(d, false);
    ids.insert(ids.end(), part.begin(), part.end());
    if (tok.eos_id >= 0) ids.push_back(tok.eos_id);
  }
  return ids;
}

}  // namespace mf
