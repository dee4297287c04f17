#include <iostream>

#include "commands.h"
#include "common.h"
#include "infer/chat_session.h"

namespace mf::cli {

int run_generate(const std::vector<std::string>& args) {
  RunFlags f;
  std::string prompt;
  bool chat = false;
  ArgParser p("moeforge generate -m PATH -p TEXT [options]",
              "Generates a continuation of TEXT, or with --chat an answer to TEXT as a user message\n"
              "rendered with the model's chat template. Speed stats go to stderr at the end.");
  p.option("prompt", 'p', "TEXT", "the prompt", &prompt, true);
  p.flag("chat", "treat the prompt as a user message and apply the chat template", &chat);
  add_run_flags(p, f);
  if (!parse_or_usage(p, args)) return 0;
  if (!chat && !f.system.empty()) throw UsageError("--system needs --chat");
  ModelBundle m = load_for_run(f);
  auto print = [](std::string_view piece) {
    std::cout << piece;
    std::cout.flush();
  };
  GenerateResult res;
  if (chat) {
    ChatOptions co;
    co.system_prompt = f.system;
    co.generation = generate_options(f, m);
    ChatSession session(*m.model, *m.tokenizer, *m.chat_template, co);
    session.set_notice_callback([](const std::string& n) { std::cerr << "[" << n << "]\n"; });
    res = session.send(prompt, print);
  } else {
    ModelContext ctx(*m.model);
    std::vector<int32_t> ids = encode_for_model(*m.tokenizer, prompt);
    res = generate(ctx, *m.tokenizer, ids, generate_options(f, m), print);
  }
  std::cout << "\n";
  std::cout.flush();
  print_stats(res.stats);
  if (f.verbose) std::cerr << "[finish: " << res.finish_reason << "]\n";
  return 0;
}

}  // namespace mf::cli
