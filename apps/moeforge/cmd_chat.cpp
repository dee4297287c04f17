// moeforge chat -m MODEL: multi-turn chat with the model's chat template. Interactive on a
// terminal (chat_repl.cpp: libedit line editing, multi-line input, Ctrl-C); with piped stdin one
// line is one message and only the answers are printed.
#include <unistd.h>

#include <iostream>
#include <optional>
#include <string>

#include "chat_repl.h"
#include "commands.h"
#include "common.h"
#include "infer/chat_session.h"
#include "interrupt_watcher.h"

namespace mf::cli {

int run_chat(const std::vector<std::string>& args) {
  RunFlags f;
  ArgParser p("moeforge chat -m PATH [options]",
              "Multi-turn chat with the model's chat template, streaming the answers (docs/chat.md).\n"
              "On a terminal: line editing and history (arrow keys); a line ending in \\ continues, \"\"\"\n"
              "opens and closes a multi-line message, a paste is one message; /save FILE and /load FILE\n"
              "keep a conversation as JSON (/help lists the commands).\n"
              "Ctrl-C stops an answer and keeps the conversation (the part already written stays as the\n"
              "answer); Ctrl-C on an empty line, or Ctrl-D, quits with status 0; a second Ctrl-C within a\n"
              "second while the answer cannot stop yet (a long prompt being read), or one while the model\n"
              "loads, quits at once with status 130.\n"
              "With piped stdin every line is one user message and only the answers are printed, one per line.\n"
              "Example: moeforge chat -m SmolLM2-135M-Instruct.Q4_1.gguf -sys \"Answer briefly.\"");
  add_run_flags(p, f);
  bool show_experts = false;
  p.flag("show-experts", "after each answer, the experts that wrote it (MoE models; a dense model says it has none)",
         &show_experts);
  p.example("moeforge chat -m ~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf", "chat in the terminal (/help lists the commands)");
  p.example("moeforge chat -m runs/smolmoe/routers/model --show-experts -sys \"Answer briefly.\"", "and see which experts wrote each answer");
  if (!parse_or_usage(p, args)) return 0;
  const bool interactive = isatty(STDIN_FILENO) != 0;
  // Before loading: the model's threads inherit the blocked SIGINT from here (interrupt_watcher.h).
  std::optional<InterruptWatcher> interrupts;
  if (interactive) interrupts.emplace();
  ModelBundle m = load_for_run(f, p);
  DecodeExpertShares tally;
  const bool moe = m.summary.experts > 0;
  if (show_experts && moe) m.model->observe_routes(&tally);
  if (show_experts && !moe)
    std::cerr << "[--show-experts: " << f.model_path << " is a dense model (no experts), so there are no experts "
              << "to show]\n";
  ChatOptions co;
  co.system_prompt = f.system;
  co.generation = generate_options(f, m);
  if (interrupts) co.generation.cancel = interrupts->cancel_flag();
  ChatSession session(*m.model, *m.tokenizer, *m.chat_template, co);
  session.set_notice_callback([](const std::string& n) { std::cerr << "[" << n << "]\n"; });
  ChatContext chat{session, show_experts && moe ? &tally : nullptr, f.verbose, interactive};
  if (!interactive) return chat_piped(chat);
  std::cerr << "moeforge chat: " << f.model_path << " (" << m.summary.chat_template_family << " template).\n"
            << kChatCommandsHelp << kChatInputHelp;
  return chat_interactive(chat, *interrupts);
}

}  // namespace mf::cli
