// moeforge perplexity -m MODEL -f TEXT: the perplexity of a text the way llama.cpp's perplexity
// tool computes it (infer/perplexity.h), so the figures of the two engines can be set side by
// side. Prints llama.cpp's running estimates ([1]12.3456,[2]...) and its final line, or JSON.
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/progress_line.h"
#include "common.h"
#include "core/mapped_file.h"
#include "core/timer.h"
#include "infer/model_files.h"
#include "infer/perplexity.h"
#include "io/text_check.h"
#include "model/load.h"
#include "model/transformer.h"

namespace mf::cli {

int run_perplexity(const std::vector<std::string>& args) {
  std::string model_path, text_path;
  PerplexityOptions o;
  int threads = 0;
  bool json = false, quiet = false;
  ArgParser p("moeforge perplexity -m MODEL -f TEXT.txt [-c N_CTX] [--chunks N] [-b BATCH] [--threads N] [--json]",
              "Measures a model's perplexity on a text file as llama.cpp's perplexity tool does: the file tokenized "
              "once, non-overlapping chunks of N_CTX tokens each evaluated from an empty cache (first token replaced "
              "by BOS when the tokenizer adds one), the second half of every chunk scored. Prints the running "
              "estimate per chunk and 'Final estimate: PPL = X +/- Y'.");
  p.option("model", 'm', "PATH", "model directory or .gguf file", &model_path, true);
  p.option("file", 'f', "TEXT", "the text to score (UTF-8)", &text_path, true);
  p.option("ctx-size", 'c', "N", "tokens per chunk (default 512, as llama.cpp)", &o.n_ctx);
  p.option("chunks", "N", "score at most N chunks (default: all the text holds)", &o.chunks);
  p.option("batch-size", 'b', "N",
           "tokens per forward pass (default 512): at least N_CTX evaluates N/N_CTX chunks at once; the figure "
           "does not depend on it",
           &o.batch);
  p.option("threads", 't', "N", "CPU threads, 0 = all (default 0)", &threads);
  std::string cache_type_k = "f32", cache_type_v = "f32";
  add_kv_cache_flags(p, cache_type_k, cache_type_v);
  p.flag("json", "print one JSON object instead of llama.cpp's text", &json);
  p.flag("quiet", "no progress line", &quiet);
  p.example("moeforge perplexity -m ~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf -f wiki.valid.txt -c 512 --chunks 20", "perplexity as llama.cpp's tool measures it");
  if (!parse_or_usage(p, args)) return 0;
  if (o.n_ctx < 4 || o.batch < 1 || threads < 0 || o.chunks < -1 || o.chunks == 0)
    throw UsageError("-c >= 4, -b >= 1, --threads >= 0 and --chunks >= 1 are required");
  o.kv_cache = kv_cache_types(cache_type_k, cache_type_v);
  if (threads > 0) omp_set_num_threads(threads);

  std::error_code ec;
  MF_CHECK(std::filesystem::is_regular_file(text_path, ec), text_path, ": no such file");
  const std::string text = read_text_file(text_path);
  check_text(text, text_path);
  const TokenizerFiles tf = load_tokenizer_files(model_path);
  Transformer model(load_model_weights(model_path));
  MF_CHECK(model.config().vocab_size >= tf.tokenizer->vocab_size(), model_path, ": the tokenizer has ",
           tf.tokenizer->vocab_size(), " tokens but the model only ", model.config().vocab_size);
  Timer timer;
  // As llama.cpp: BOS only where the tokenizer adds one; special-token text is read as text.
  const std::vector<int32_t> tokens = encode_for_model(*tf.tokenizer, text, /*parse_special=*/false);
  const double tokenize_s = timer.seconds();
  o.add_bos = tf.tokenizer->add_bos;
  o.bos_id = tf.tokenizer->bos_id;
  if (!json)
    std::fprintf(stderr, "perplexity: %zu tokens (tokenized in %.2f s), n_ctx=%d, batch=%d%s\n", tokens.size(),
                 tokenize_s, o.n_ctx, o.batch, o.add_bos ? ", BOS at the start of each chunk" : "");

  Timer run;
  PerplexityResult r;
  std::optional<ProgressLine> progress;
  try {
    r = measure_perplexity(model, tokens, o, [&](int done, int total, double running) {
      if (!json) {
        std::printf("[%d]%.4f,", done, running);
        std::fflush(stdout);
      }
      if (quiet) return;
      if (!progress) progress.emplace(stderr, ProgressLine::stderr_is_terminal(), total);
      const double elapsed = run.seconds();
      char ppl[32];
      std::snprintf(ppl, sizeof ppl, "%.4f", running);
      progress->update(done, cat("[", done, "/", total, " chunks] ppl ", ppl, "  ",
                                 int64_t(double(done) * o.n_ctx / std::max(elapsed, 1e-9) + 0.5), " tokens/s  elapsed ",
                                 format_duration(elapsed), "  ETA ", format_duration(elapsed / done * (total - done))),
                       elapsed);
    });
  } catch (const Error& e) {
    fail(text_path, ": ", e.what());
  }
  const double seconds = run.seconds();
  if (json) {
    nlohmann::json j = {{"model", model_path},
                        {"file", text_path},
                        {"text_tokens", r.text_tokens},
                        {"n_ctx", r.n_ctx},
                        {"chunks", r.chunks},
                        {"scored_tokens", r.scored},
                        {"add_bos", o.add_bos},
                        {"ppl", r.ppl},
                        {"ppl_error", r.ppl_error},
                        {"mean_nll", r.mean_nll},
                        {"nll_std_error", r.nll_std_error},
                        {"running_ppl", r.running},
                        {"seconds", seconds},
                        {"tokens_per_s", double(r.chunks) * r.n_ctx / std::max(seconds, 1e-9)}};
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_error);
  }
  return 0;
}

}  // namespace mf::cli
