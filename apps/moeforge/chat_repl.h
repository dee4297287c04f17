// The two ways `moeforge chat` talks with a person: piped (one line = one message, answers
// only, one per line) and interactive (line editing, history, multi-line messages, Ctrl-C).
// Both answer through answer_turn and take the same slash commands.
#pragma once
#include <optional>
#include <string>

#include "infer/chat_session.h"
#include "infer/language_model.h"

namespace mf::cli {

class InterruptWatcher;

struct ChatContext {
  ChatSession& session;
  DecodeExpertShares* experts = nullptr;  // --show-experts on a MoE model
  bool verbose = false;
  bool interactive = false;
};

// What the slash commands and the input syntax are, for the banner and /help.
extern const char* const kChatCommandsHelp;
extern const char* const kChatInputHelp;

enum class CommandOutcome { handled, quit };
// `line` starts with '/'. Errors (a file that cannot be read or written) are reported, not thrown.
CommandOutcome run_chat_command(ChatContext& chat, const std::string& line);

// Sends one message and streams the answer to stdout; a turn that fails (e.g. longer than the
// context) is reported on stderr and the chat goes on (nullopt).
std::optional<GenerateResult> answer_turn(ChatContext& chat, const std::string& message);

int chat_piped(ChatContext& chat);
// The watcher must be the one whose cancel flag the session's generation options hold.
int chat_interactive(ChatContext& chat, InterruptWatcher& interrupts);

}  // namespace mf::cli
