#include <unistd.h>

#include <iostream>
#include <string>

#include "commands.h"
#include "common.h"
#include "infer/chat_session.h"

namespace mf::cli {
namespace {

const char* kChatHelp =
    "commands: /reset (forget the conversation), /system TEXT (set the system prompt and reset),\n"
    "          /help, /quit; Ctrl-D quits\n";

}  // namespace

int run_chat(const std::vector<std::string>& args) {
  RunFlags f;
  ArgParser p("moeforge chat -m PATH [options]",
              "Multi-turn chat with the model's chat template, streaming the answers.\n"
              "Interactive on a terminal; with piped stdin every line is one user message and only\n"
              "the answers are printed, one per line.");
  add_run_flags(p, f);
  bool show_experts = false;
  p.flag("show-experts", "after each answer, the experts that wrote it (MoE models)", &show_experts);
  if (!parse_or_usage(p, args)) return 0;
  ModelBundle m = load_for_run(f, p);
  DecodeExpertShares tally;
  if (show_experts) m.model->observe_routes(&tally);
  const bool interactive = isatty(STDIN_FILENO) != 0;
  ChatOptions co;
  co.system_prompt = f.system;
  co.generation = generate_options(f, m);
  ChatSession session(*m.model, *m.tokenizer, *m.chat_template, co);
  session.set_notice_callback([](const std::string& n) { std::cerr << "[" << n << "]\n"; });
  if (interactive) {
    std::cerr << "moeforge chat: " << f.model_path << " (" << m.summary.chat_template_family
              << " template). " << kChatHelp;
  }
  std::string line;
  while (true) {
    if (interactive) {
      std::cout << "> ";
      std::cout.flush();
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '/') {
      if (line == "/quit" || line == "/exit") break;
      if (line == "/help") {
        std::cerr << kChatHelp;
      } else if (line == "/reset") {
        session.reset();
        std::cerr << "[conversation reset]\n";
      } else if (line.rfind("/system", 0) == 0 && (line.size() == 7 || line[7] == ' ')) {
        session.set_system_prompt(line.size() > 8 ? line.substr(8) : "");
        session.reset();
        std::cerr << "[system prompt set; conversation reset]\n";
      } else {
        std::cerr << "[unknown command " << line << "; /help lists them]\n";
      }
      continue;
    }
    try {
      tally.clear();
      GenerateResult r = session.send(line, [](std::string_view piece) {
        std::cout << piece;
        std::cout.flush();
      });
      std::cout << "\n";
      std::cout.flush();
      if (show_experts && tally.tokens > 0) {
        std::cerr << "[experts:";
        for (const auto& [name, share] : tally.top(3)) std::cerr << " " << name << " " << int(share * 1000 + 0.5) / 10.0 << "%";
        std::cerr << " of the routing over " << tally.tokens << " tokens]\n";
      }
      if (f.verbose) print_stats(r.stats);
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      // One failed turn (e.g. a message longer than the context) does not end the chat.
      std::cout << "\n";
      std::cerr << "[error: " << e.what() << "]\n";
    }
  }
  if (interactive) std::cout << "\n";
  return 0;
}

}  // namespace mf::cli
