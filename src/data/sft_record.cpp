#include "data/sft_record.h"

#include <cctype>

#include "core/mapped_file.h"

namespace mf {

std::string domain_key(const std::string& name) {
  std::string key = name;
  for (char& ch : key) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return key;
}

int expert_of_domain(const std::string& domain, const std::vector<std::string>& expert_names) {
  const std::string key = domain_key(domain);
  for (size_t e = 0; e < expert_names.size(); ++e)
    if (domain_key(expert_names[e]) == key) return int(e);
  return -1;
}

std::string user_message(const SftRecord& r) {
  if (r.input.empty()) return r.instruction;
  return r.instruction + "\n\n" + r.input;
}

nlohmann::json to_json(const SftRecord& r) {
  nlohmann::json j = nlohmann::json::object();
  j["instruction"] = r.instruction;
  if (!r.input.empty()) j["input"] = r.input;
  j["output"] = r.output;
  j["domain"] = r.domain;
  j["source"] = r.source;
  if (!r.history.empty()) {
    nlohmann::json h = nlohmann::json::array();
    for (const ChatTurn& t : r.history) h.push_back({{"role", t.role}, {"content", t.content}});
    j["history"] = std::move(h);
  }
  if (r.loss_on_history) j["loss_on_history"] = true;
  return j;
}

SftRecord sft_record_from_json(const nlohmann::json& j) {
  SftRecord r;
  r.instruction = required_string(j, "instruction");
  r.output = required_string(j, "output");
  if (r.instruction.empty()) throw RecordError("field \"instruction\" is empty");
  if (r.output.empty()) throw RecordError("field \"output\" is empty");
  r.input = optional_string(j, "input");
  r.domain = optional_string(j, "domain");
  r.source = optional_string(j, "source");
  if (auto it = j.find("history"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) throw RecordError("field \"history\" must be an array of {\"role\", \"content\"}");
    if (it->size() >= kMaxConversationTurns)
      throw RecordError(cat("field \"history\" holds ", it->size(), " turns, more than a record may (",
                            kMaxConversationTurns - 1, ")"));
    for (const auto& t : *it) {
      if (!t.is_object()) throw RecordError("field \"history\" must be an array of {\"role\", \"content\"}");
      ChatTurn turn{required_string(t, "role"), required_string(t, "content")};
      // A system turn sets up the whole conversation: templates accept it first only.
      const bool first_system = turn.role == "system" && r.history.empty();
      if (turn.role != "user" && turn.role != "assistant" && !first_system)
        throw RecordError(cat("history role must be \"user\" or \"assistant\" (or \"system\" as the first turn), got \"",
                              turn.role, "\" at history[", r.history.size(), "]"));
      r.history.push_back(std::move(turn));
    }
  }
  if (auto it = j.find("loss_on_history"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) throw RecordError("field \"loss_on_history\" must be true or false");
    r.loss_on_history = it->get<bool>();
  }
  return r;
}

std::vector<SftRecord> read_sft_jsonl(const std::string& path, BadRecordPolicy& bad) {
  std::vector<SftRecord> out;
  read_jsonl(path, bad, [&](const nlohmann::json& j, int64_t) { out.push_back(sft_record_from_json(j)); });
  return out;
}

void write_sft_jsonl(const std::string& path, const std::vector<SftRecord>& records) {
  std::string text;
  for (const SftRecord& r : records) text += to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace mf

#include <filesystem>
#include <fstream>

namespace mf {

bool looks_like_sft_jsonl(const std::string& path) {
  if (std::filesystem::path(path).extension() != ".jsonl") return false;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    return j.is_object() && j.contains("instruction");
  }
  return false;
}

}  // namespace mf
