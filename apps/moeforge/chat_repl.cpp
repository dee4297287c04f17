#include "chat_repl.h"

#include <iostream>

#include "infer/chat_input.h"
#include "interrupt_watcher.h"
#include "line_editor.h"

namespace mf::cli {

int chat_piped(ChatContext& chat) {
  // One line is one message and only the answers are printed: scripts and tests rely on it.
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '/') {
      if (run_chat_command(chat, line) == CommandOutcome::quit) break;
      continue;
    }
    answer_turn(chat, line);
  }
  return 0;
}

int chat_interactive(ChatContext& chat, InterruptWatcher& interrupts) {
  LineEditor editor("moeforge", interrupts.wake_fd());
  ChatInputAssembler input;
  interrupts.take_interrupts();  // from here on Ctrl-C stops answers instead of the process
  while (true) {
    const LineEditor::Input in = editor.read(input.continuing() ? "... " : "> ");
    if (in.status == LineEditor::Status::interrupted) {
      interrupts.take();
      std::cout << "\n";
      // Ctrl-C drops what is being typed; on an empty line it quits, as in llama-cli.
      if (in.interrupted_with_text || input.continuing()) {
        input.clear();
        continue;
      }
      return 0;
    }
    if (in.status == LineEditor::Status::end_of_input) {
      std::cout << "\n";
      return 0;
    }
    if (!in.text.empty()) editor.remember(in.text);
    const std::optional<std::string> message = input.add(in.text, in.ended_inside_paste);
    if (!message) continue;
    if ((*message)[0] == '/' && message->find('\n') == std::string::npos) {
      if (run_chat_command(chat, *message) == CommandOutcome::quit) return 0;
      continue;
    }
    interrupts.take();  // a Ctrl-C from before this message must not stop its answer
    const std::optional<GenerateResult> r = answer_turn(chat, *message);
    if (r && r->finish_reason == "cancelled") {
      interrupts.take();
      std::cerr << (r->text.empty() ? "[stopped before the answer began; the message was dropped]\n"
                                    : "[answer stopped; what was written stays in the conversation]\n");
    }
  }
}

}  // namespace mf::cli
