// moeforge: one binary, one subcommand per job.
#include <cstring>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "core/version.h"

namespace {

const char* kUsage =
    "usage: moeforge <command> [options]\n"
    "\n"
    "commands:\n"
    "  info       describe a model (architecture, sizes, experts, tokenizer, chat template)\n"
    "  generate   generate text from a prompt (--chat to use the chat template)\n"
    "  chat       interactive multi-turn chat (reads one message per line when piped)\n"
    "  train      train from a YAML recipe (from scratch, fine-tuning, routers only)\n"
    "  plot       render a training run's curves and expert load to HTML\n"
    "  compare    finished training runs side by side (loss, speed, expert balance)\n"
    "  data       convert datasets to one instruction JSONL, map domains, mix and split\n"
    "  eval       per-domain answer-token loss and perplexity of a model on a JSONL split\n"
    "  fuse       fuse dense models into one MoE (shared attention, one expert per source MLP)\n"
    "  upcycle    turn one dense model into a MoE whose experts copy its MLP\n"
    "  inspect    which experts a MoE's routers pick: per layer, per token, or per domain over a dataset\n"
    "  convert    HF directory or GGUF -> llama-architecture GGUF (dense or MoE) or HF directory\n"
    "  perplexity perplexity of a text file, computed as llama.cpp's perplexity tool does\n"
    "  serve      OpenAI-compatible HTTP server with continuous batching\n"
    "\n"
    "Run 'moeforge <command> --help' for a command's options. 'moeforge --version' prints the version.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::cout << "moeforge " << mf::kVersion << "\n";
    return 0;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (cmd == "info") return mf::cli::run_info(args);
    if (cmd == "generate") return mf::cli::run_generate(args);
    if (cmd == "chat") return mf::cli::run_chat(args);
    if (cmd == "train") return mf::cli::run_train(args);
    if (cmd == "plot") return mf::cli::run_plot(args);
    if (cmd == "compare") return mf::cli::run_compare(args);
    if (cmd == "data") return mf::cli::run_data(args);
    if (cmd == "eval") return mf::cli::run_eval(args);
    if (cmd == "fuse") return mf::cli::run_fuse(args);
    if (cmd == "upcycle") return mf::cli::run_upcycle(args);
    if (cmd == "inspect") return mf::cli::run_inspect(args);
    if (cmd == "convert") return mf::cli::run_convert(args);
    if (cmd == "perplexity") return mf::cli::run_perplexity(args);
    if (cmd == "serve") return mf::cli::run_serve(args);
  } catch (const mf::cli::UsageError& e) {
    std::cerr << "moeforge " << cmd << ": " << e.what() << "\n";
    return 2;
  } catch (const mf::Error& e) {
    std::cerr << "moeforge " << cmd << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "moeforge " << cmd << ": error: out of memory (an input may ask for more than this machine has)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "moeforge " << cmd << ": internal error: " << e.what() << "\n";
    return 1;
  } catch (...) {
    std::cerr << "moeforge " << cmd << ": internal error: unknown exception\n";
    return 1;
  }
  std::cerr << "moeforge: unknown command '" << cmd << "'\n\n" << kUsage;
  return 2;
}
