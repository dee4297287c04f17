// moeforge eval -m MODEL --data SPLIT.jsonl: per-domain answer-token loss and perplexity, so a
// base model, a domain expert and a fused MoE can be compared on the same held-out records.
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
#include "infer/bundle.h"
#include "infer/model_files.h"
#include "model/load.h"
#include "train/sft_inputs.h"
#include "train/domain_eval.h"

namespace mf::cli {

namespace {

void print_table(const std::string& model, const std::vector<DomainLoss>& rows) {
  std::printf("%s\n", model.c_str());
  std::printf("%-14s %9s %14s %10s %12s\n", "domain", "examples", "answer tokens", "loss", "perplexity");
  for (const DomainLoss& r : rows) {
    if (r.domain == "all") std::printf("%s\n", std::string(63, '-').c_str());
    std::printf("%-14s %9lld %14lld %10.4f %12.3f\n", r.domain.c_str(), (long long)r.examples,
                (long long)r.answer_tokens, r.loss(), r.perplexity());
  }
}

}  // namespace

int run_eval(const std::vector<std::string>& args) {
  std::string model_path, json_path;
  std::vector<std::string> data_files, domains;
  int max_per_domain = 0, max_len = 1024, batch = 8, threads = 0;
  bool skip_bad = false, quiet = false;
  ArgParser p("moeforge eval -m MODEL --data SPLIT.jsonl [options]",
              "Scores a model (HF directory or .gguf) on unified instruction records: the mean cross-entropy of the "
              "answer tokens under the model's chat template, per domain and overall, as a table (and JSON).");
  p.option("model", 'm', "PATH", "model directory or .gguf file", &model_path, true);
  p.repeated("data", "FILE.jsonl", "unified instruction records (repeatable)", &data_files);
  p.repeated("domain", "NAME", "score only this domain (repeatable; default all)", &domains);
  p.option("max-per-domain", "N", "score the first N records of each domain (default 0 = all)", &max_per_domain);
  p.option("max-len", "N", "tokens per example at most; longer ones are cut (default 1024)", &max_len);
  p.option("batch", "N", "examples per forward pass (default 8)", &batch);
  p.option("json", 0, "FILE", "also write the results as JSON", &json_path);
  p.option("threads", "N", "CPU threads, 0 = all (default 0)", &threads);
  p.flag("skip-bad", "skip malformed records (counted) instead of failing", &skip_bad);
  p.flag("quiet", "no progress line", &quiet);
  p.example("moeforge eval -m runs/smolmoe/routers/model --data data/mix/test.jsonl", "answer-token loss per domain");
  if (!parse_or_usage(p, args)) return 0;
  if (data_files.empty()) throw UsageError("--data FILE.jsonl is required");
  if (max_per_domain < 0 || max_len < 2 || batch < 1 || threads < 0)
    throw UsageError("--max-per-domain >= 0, --max-len >= 2, --batch >= 1 and --threads >= 0 are required");
  if (threads > 0) omp_set_num_threads(threads);

  MF_CHECK(std::filesystem::exists(model_path), model_path, ": no such file or directory");
  TokenizerFiles tf = load_tokenizer_files(model_path);
  const std::unique_ptr<ChatTemplate> chat = model_chat_template(*tf.tokenizer, tf.chat_template, tf.chat_template_origin);
  SftInputOptions so;
  so.domains = domains;
  so.max_per_domain = max_per_domain;
  so.skip_bad = skip_bad;
  so.max_len = max_len;
  so.tokenizer_source = model_path;
  so.quiet = quiet;
  const SftExamples ex = load_sft_examples(data_files, *tf.tokenizer, *chat, so);

  // Scoring needs no gradients: every tensor stays frozen, in its stored dtype.
  TrainableTransformer model(load_model_weights(model_path), [](const std::string&) { return true; });
  MF_CHECK(model.config().vocab_size == tf.tokenizer->vocab_size(), model_path, ": the model's vocabulary (",
           model.config().vocab_size, ") does not match its tokenizer's (", tf.tokenizer->vocab_size(), ")");
  SftBatching b;
  b.max_rows = batch;
  b.max_tokens = int64_t(batch) * max_len;
  b.pad_id = tf.tokenizer->pad_id >= 0 ? tf.tokenizer->pad_id : std::max(tf.tokenizer->eos_id, 0);
  Timer timer;
  std::optional<ProgressLine> progress;
  const auto rows = evaluate_by_domain(model, ex, b, [&](int64_t done, int64_t total) {
    if (quiet) return;
    if (!progress) progress.emplace(stderr, ProgressLine::stderr_is_terminal(), total);
    const double s = timer.seconds(), rate = double(done) / std::max(s, 1e-9);
    progress->update(done, cat("[eval] ", done, "/", total, " tokens  ", int64_t(rate + 0.5), " tok/s  elapsed ",
                               format_duration(s), "  ETA ", format_duration(double(total - done) / std::max(rate, 1e-9))),
                     s);
  });
  if (progress) progress->break_line();
  print_table(model_path, rows);

  if (!json_path.empty()) {
    nlohmann::json j = {{"model", model_path}, {"data", data_files}, {"wall_s", timer.seconds()}};
    nlohmann::json out = nlohmann::json::array();
    for (const DomainLoss& r : rows)
      out.push_back({{"domain", r.domain}, {"examples", r.examples}, {"answer_tokens", r.answer_tokens},
                     {"loss", r.loss()}, {"perplexity", r.perplexity()}});
    j["domains"] = std::move(out);
    const std::string text = j.dump(2) + "\n";
    write_file_atomic(json_path, text.data(), text.size());
  }
  return 0;
}

}  // namespace mf::cli
