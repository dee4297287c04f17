// A chat conversation saved to and read back from a JSON file (`chat`'s /save and /load).
// The file is OpenAI's message list, so other tools read it as is:
//   {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}, ...]}
// with the system prompt, when there is one, as the first message. A file to load is untrusted
// input: every error names the file and the key, and sizes are capped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_template.h"

namespace mf {

struct Conversation {
  std::string system_prompt;        // empty: none
  std::vector<ChatMessage> turns;   // "user" and "assistant" messages, in order
};

// Bounds on a file to load: a conversation longer than this is not one a chat can use.
inline constexpr uint64_t kMaxConversationFileBytes = 64ull << 20;
inline constexpr size_t kMaxConversationMessages = 100000;

// Writes atomically (a temporary file renamed over `path`).
void save_conversation(const std::string& path, const Conversation& conversation);
// Throws mf::Error "PATH: messages[3].role: ..." for anything but the format above.
Conversation load_conversation(const std::string& path);

}  // namespace mf
