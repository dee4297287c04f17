#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "core/mapped_file.h"
#include "infer/chat_session.h"
#include "io/text_check.h"

namespace mf::cli {

int run_generate(const std::vector<std::string>& args) {
  RunFlags f;
  std::string prompt, prompt_file;
  bool chat = false, verbose_prompt = false;
  ArgParser p("moeforge generate -m PATH (-p TEXT | -f FILE) [options]",
              "Generates a continuation of TEXT, or with --chat an answer to TEXT as a user message\n"
              "rendered with the model's chat template. Speed stats go to stderr at the end.");
  p.option("prompt", 'p', "TEXT", "the prompt", &prompt);
  p.option("file", 'f', "FILE", "read the prompt from FILE (UTF-8 text) instead", &prompt_file);
  p.flag("chat", "treat the prompt as a user message and apply the chat template", &chat);
  p.flag("verbose-prompt", "print the prompt as the model reads it (after the chat template) to stderr, as a JSON "
         "string after 'prompt: '", &verbose_prompt);
  add_run_flags(p, f);
  p.example("moeforge generate -m ~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf -p \"The capital of France is\" -n 16 --temp 0", "a greedy continuation of 16 tokens");
  p.example("moeforge generate -m runs/smolmoe/routers/model --chat -f question.txt --verbose", "an answer to the question in a file, with the sampling values and seed used");
  if (!parse_or_usage(p, args)) return 0;
  if (p.given("prompt") == p.given("file")) throw UsageError("give the prompt as -p TEXT or -f FILE (one of them)");
  if (!prompt_file.empty()) {
    prompt = read_text_file(prompt_file);
    check_text(prompt, prompt_file);
  }
  if (!chat && !f.system.empty()) throw UsageError("--system needs --chat");
  ModelBundle m = load_for_run(f, p);
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
  print_stats(res.stats, f.verbose);
  if (f.verbose) {
    std::cerr << "[finish: " << res.finish_reason << "]\n";
    print_expert_copies(m);
  }
  return 0;
}

}  // namespace mf::cli
