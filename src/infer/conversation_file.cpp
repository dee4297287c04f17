#include "infer/conversation_file.h"

#include <filesystem>
#include <system_error>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/json_file.h"

namespace mf {

namespace {

using nlohmann::json;

// One message object: exactly "role" and "content", both strings.
ChatMessage read_message(const std::string& path, const json& m, size_t index) {
  const std::string where = cat(path, ": messages[", index, "]");
  MF_CHECK(m.is_object(), where, ": expected an object {\"role\", \"content\"}, got ", json_excerpt(m));
  for (const auto& [key, value] : m.items())
    MF_CHECK(key == "role" || key == "content", where, ": unknown key '", key, "' (a message has role and content)");
  MF_CHECK(m.contains("role"), where, ": missing key 'role'");
  MF_CHECK(m.contains("content"), where, ": missing key 'content'");
  const json& role = m["role"];
  const json& content = m["content"];
  MF_CHECK(role.is_string(), where, ".role: expected a string, got ", json_excerpt(role));
  MF_CHECK(content.is_string(), where, ".content: expected a string, got ", json_excerpt(content));
  return {role.get<std::string>(), content.get<std::string>()};
}

}  // namespace

void save_conversation(const std::string& path, const Conversation& conversation) {
  // Keys in OpenAI's order (role, then content), for people reading the file.
  using ordered = nlohmann::ordered_json;
  ordered messages = ordered::array();
  auto add = [&](const std::string& role, const std::string& content) {
    ordered m = ordered::object();
    m["role"] = role;
    m["content"] = content;
    messages.push_back(std::move(m));
  };
  if (!conversation.system_prompt.empty()) add("system", conversation.system_prompt);
  for (const ChatMessage& t : conversation.turns) add(t.role, t.content);
  ordered doc = ordered::object();
  doc["messages"] = std::move(messages);
  // Answers cut inside a character are possible only in theory (the stream decoder emits whole
  // characters); replacing keeps the write from failing on one.
  const std::string text = doc.dump(2, ' ', false, ordered::error_handler_t::replace) + "\n";
  write_file_atomic(path, text.data(), text.size());
}

Conversation load_conversation(const std::string& path) {
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  if (!ec)
    MF_CHECK(bytes <= kMaxConversationFileBytes, path, ": ", bytes, " bytes is more than a conversation file may hold (",
             kMaxConversationFileBytes, ")");
  const json doc = read_json_file(path);  // names the file when it is missing or not JSON
  MF_CHECK(doc.is_object(), path, ": expected an object {\"messages\": [...]}, got ", json_excerpt(doc));
  for (const auto& [key, value] : doc.items())
    MF_CHECK(key == "messages", path, ": unknown key '", key, "' (a conversation file has only 'messages')");
  MF_CHECK(doc.contains("messages"), path, ": missing key 'messages'");
  const json& messages = doc["messages"];
  MF_CHECK(messages.is_array(), path, ": messages: expected an array, got ", json_excerpt(messages));
  MF_CHECK(messages.size() <= kMaxConversationMessages, path, ": messages: ", messages.size(),
           " messages is more than a conversation file may hold (", kMaxConversationMessages, ")");
  Conversation c;
  for (size_t i = 0; i < messages.size(); ++i) {
    ChatMessage m = read_message(path, messages[i], i);
    if (m.role == "system") {
      MF_CHECK(i == 0, path, ": messages[", i, "].role: \"system\" may only be the first message");
      c.system_prompt = std::move(m.content);
      continue;
    }
    MF_CHECK(m.role == "user" || m.role == "assistant", path, ": messages[", i,
             "].role: expected \"system\", \"user\" or \"assistant\", got ", json_excerpt(json(m.role)));
    c.turns.push_back(std::move(m));
  }
  return c;
}

}  // namespace mf
