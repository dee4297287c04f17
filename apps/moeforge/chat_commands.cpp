// The slash commands of `moeforge chat`, and one turn's answer: shared by the piped and the
// interactive loop.
#include <iostream>

#include "chat_repl.h"
#include "common.h"
#include "infer/conversation_file.h"

namespace mf::cli {

const char* const kChatCommandsHelp =
    "commands: /save FILE (the conversation as JSON), /load FILE (a saved conversation back),\n"
    "          /reset (forget the conversation), /system TEXT (set the system prompt and reset),\n"
    "          /help, /quit\n";
const char* const kChatInputHelp =
    "input:    a line ending in \\ continues; \"\"\" opens and closes a multi-line message; a paste is one "
    "message;\n"
    "          up/down walk the history; Ctrl-C stops an answer (what was written stays in the\n"
    "          conversation); Ctrl-C on an empty line, or Ctrl-D, quits\n";

namespace {

// "/save  notes.json " -> "notes.json"
std::string argument_of(const std::string& line, size_t command_length) {
  std::string arg = line.substr(command_length);
  const size_t first = arg.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  const size_t last = arg.find_last_not_of(" \t");
  return arg.substr(first, last - first + 1);
}

bool is_command(const std::string& line, const std::string& name) {
  return line.rfind(name, 0) == 0 && (line.size() == name.size() || line[name.size()] == ' ');
}

void show_transcript(const ChatSession& session) {
  if (!session.system_prompt().empty()) std::cout << "[system] " << session.system_prompt() << "\n";
  for (const ChatMessage& m : session.turns()) std::cout << (m.role == "user" ? "> " : "") << m.content << "\n";
  std::cout.flush();
}

CommandOutcome save(ChatContext& chat, const std::string& file) {
  if (file.empty()) {
    std::cerr << "[usage: /save FILE]\n";
    return CommandOutcome::handled;
  }
  save_conversation(file, {chat.session.system_prompt(), chat.session.turns()});
  std::cerr << "[saved " << chat.session.turns().size() << " messages"
            << (chat.session.system_prompt().empty() ? "" : " and the system prompt") << " to " << file << "]\n";
  return CommandOutcome::handled;
}

CommandOutcome load(ChatContext& chat, const std::string& file) {
  if (file.empty()) {
    std::cerr << "[usage: /load FILE]\n";
    return CommandOutcome::handled;
  }
  Conversation c = load_conversation(file);
  const size_t n = c.turns.size();
  const bool has_system = !c.system_prompt.empty();
  chat.session.restore(std::move(c.system_prompt), std::move(c.turns));
  std::cerr << "[loaded " << n << " messages" << (has_system ? " and a system prompt" : "") << " from " << file
            << "]\n";
  // A person picks the conversation up where it was; a pipe gets answers only.
  if (chat.interactive) show_transcript(chat.session);
  return CommandOutcome::handled;
}

}  // namespace

CommandOutcome run_chat_command(ChatContext& chat, const std::string& line) {
  try {
    if (line == "/quit" || line == "/exit" || line == "/bye") return CommandOutcome::quit;
    if (line == "/help") {
      std::cerr << kChatCommandsHelp;
      if (chat.interactive) std::cerr << kChatInputHelp;
    } else if (line == "/reset") {
      chat.session.reset();
      std::cerr << "[conversation reset]\n";
    } else if (is_command(line, "/system")) {
      chat.session.set_system_prompt(line.size() > 8 ? line.substr(8) : "");
      chat.session.reset();
      std::cerr << "[system prompt set; conversation reset]\n";
    } else if (is_command(line, "/save")) {
      return save(chat, argument_of(line, 5));
    } else if (is_command(line, "/load")) {
      return load(chat, argument_of(line, 5));
    } else {
      std::cerr << "[unknown command " << line << "; /help lists them]\n";
    }
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    std::cerr << "[error: " << e.what() << "]\n";
  }
  return CommandOutcome::handled;
}

std::optional<GenerateResult> answer_turn(ChatContext& chat, const std::string& message) {
  try {
    if (chat.experts) chat.experts->clear();
    GenerateResult r = chat.session.send(message, [](std::string_view piece) {
      std::cout << piece;
      std::cout.flush();
    });
    std::cout << "\n";
    std::cout.flush();
    if (chat.experts && chat.experts->tokens > 0) {
      std::cerr << "[experts:";
      for (const auto& [name, share] : chat.experts->top(3))
        std::cerr << " " << name << " " << int(share * 1000 + 0.5) / 10.0 << "%";
      std::cerr << " of the routing over " << chat.experts->tokens << " tokens]\n";
    }
    if (chat.verbose) print_stats(r.stats);
    return r;
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    // One failed turn (e.g. a message longer than the context) does not end the chat.
    std::cout << "\n";
    std::cerr << "[error: " << e.what() << "]\n";
    return std::nullopt;
  }
}

}  // namespace mf::cli
