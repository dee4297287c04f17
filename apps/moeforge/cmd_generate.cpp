#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "infer/chat_session.h"

namespace mf::cli {

int run_generate(const std::vector<std::string>& args) {
  RunFlags f;
  std::string prompt;
  bool chat = false, verbose_prompt = false;
  ArgParser p("moeforge generate -m PATH -p TEXT [options]",
              "Generates a continuation of TEXT, or with --chat an answer to TEXT as a user message\n"
              "rendered with the model's chat template. Speed stats go to stderr at the end.");
  p.option("prompt", 'p', "TEXT", "the prompt", &prompt, true);
  p.flag("chat", "treat the prompt as a user message and apply the chat template", &chat);
  p.flag("verbose-prompt", "print the prompt as the model reads it (after the chat template) to stderr, as a JSON "
         "string after 'prompt: '", &verbose_prompt);
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
    if (verbose_prompt) {
      std::vector<ChatMessage> messages = session.messages();
      messages.push_back({"user", prompt});
      std::cerr << "prompt: " << nlohmann::json(m.chat_template->render(messages, true)).dump() << "\n";
    }
    session.set_notice_callback([](const std::string& n) { std::cerr << "[" << n << "]\n"; });
    res = session.send(prompt, print);
  } else {
    if (verbose_prompt) std::cerr << "prompt: " << nlohmann::json(prompt).dump() << "\n";
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
