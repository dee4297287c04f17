// moeforge inspect: which experts a MoE's routers pick, for one prompt (per layer, optionally
// per token) or over a labelled instruction dataset (domain x expert matrix, dispatch accuracy).
#include <omp.h>

#include <cstdio>
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
#include "infer/router_analysis.h"
#include "infer/token_route_grid.h"
#include "model/load.h"
#include "train/sft_inputs.h"

namespace mf::cli {

namespace {

void print_prompt_table(const PromptRoutes& r) {
  for (const LayerRoutes& l : r.layers) {
    std::vector<int> order(l.share.size());
    for (size_t e = 0; e < order.size(); ++e) order[e] = int(e);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l.share[size_t(a)] > l.share[size_t(b)]; });
    const int second = order.size() > 1 ? order[1] : order[0];
    std::printf("Layer %2d | 1. %-14s | 2. %-14s | (%5.1f%% | %5.1f%%)\n", l.layer,
                r.expert_names[size_t(order[0])].c_str(), r.expert_names[size_t(second)].c_str(),
                100.0 * l.share[size_t(order[0])], 100.0 * l.share[size_t(second)]);
  }
}

void print_token_grid(const PromptRoutes& r, const Tokenizer& tok, std::span<const int32_t> ids) {
  std::vector<std::string> texts;
  for (size_t t = 0; t < ids.size(); ++t) texts.push_back(tok.decode(ids.subspan(t, 1)));
  std::printf("\n%s", format_token_route_grid(r, texts).c_str());
}

nlohmann::json prompt_json(const PromptRoutes& r, const Tokenizer& tok, std::span<const int32_t> ids) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerRoutes& l : r.layers) {
    nlohmann::json tokens = nlohmann::json::array();
    for (size_t t = 0; t < l.tokens.size(); ++t) {
      nlohmann::json top = nlohmann::json::array();
      for (size_t j = 0; j < l.tokens[t].experts.size(); ++j)
        top.push_back({{"expert", r.expert_names[size_t(l.tokens[t].experts[j])]}, {"prob", l.tokens[t].probs[j]}});
      tokens.push_back({{"token", tok.decode(ids.subspan(t, 1))}, {"top", top}});
    }
    nlohmann::json share = nlohmann::json::object();
    for (size_t e = 0; e < l.share.size(); ++e) share[r.expert_names[e]] = l.share[e];
    layers.push_back({{"layer", l.layer}, {"share", share}, {"tokens", tokens}});
  }
  return {{"experts", r.expert_names}, {"layers", layers}};
}

}  // namespace

int run_inspect(const std::vector<std::string>& args) {
  std::string model_path, prompt, output;
  std::vector<std::string> data_files, domains;
  bool chat = false, tokens = false, json = false, per_layer = false, quiet = false;
  int top = 2, max_per_domain = 64, max_len = 1024, threads = 0;
  ArgParser p("moeforge inspect -m MODEL (-p PROMPT | --data SPLIT.jsonl) [options]",
              "Shows which experts a MoE's routers choose: for a prompt, the two dominant experts of every layer and "
              "their share of the routing probability (--tokens: each token's top expert per layer); for labelled "
              "instruction records, a domain x expert matrix of top-1 routes over the answer tokens, per layer and "
              "overall, with the dispatch accuracy (HTML heatmaps with -o).");
  p.option("model", 'm', "PATH", "MoE model directory or .gguf", &model_path, true);
  p.option("prompt", 'p', "TEXT", "the prompt to route", &prompt);
  p.flag("chat", "wrap the prompt in the model's chat template as a user turn", &chat);
  p.flag("tokens", "also show each token's top-1 expert per layer", &tokens);
  p.flag("json", "print JSON instead of tables", &json);
  p.option("top", "N", "experts kept per token in --json (default 2)", &top);
  p.repeated("data", "FILE.jsonl", "unified instruction records to tally by domain (repeatable)", &data_files);
  p.repeated("domain", "NAME", "with --data: only this domain (repeatable)", &domains);
  p.option("max-per-domain", "N", "with --data: records per domain (default 64; 0 = all)", &max_per_domain);
  p.option("max-len", "N", "with --data: tokens per record at most (default 1024)", &max_len);
  p.flag("per-layer", "with --data: print every layer's matrix too", &per_layer);
  p.option("output", 'o', "FILE.html", "with --data: write the heatmaps here", &output);
  p.option("threads", "N", "CPU threads, 0 = all (default 0)", &threads);
  p.flag("quiet", "no progress line", &quiet);
  p.example("moeforge inspect -m runs/smolmoe/routers/model -p \"Write a haiku\" --tokens", "which experts each token went to, layer by layer");
  p.example("moeforge inspect -m runs/smolmoe/routers/model --data data/mix/validation.jsonl -o routing.html", "a routing report over a dataset (docs/reports.md)");
  if (!parse_or_usage(p, args)) return 0;
  if (prompt.empty() == data_files.empty()) throw UsageError("give either -p PROMPT or --data FILE.jsonl");
  if (threads > 0) omp_set_num_threads(threads);

  TokenizerFiles tf = load_tokenizer_files(model_path);
  Transformer model(load_model_weights(model_path));
  MF_CHECK(model.config().is_moe(), model_path, ": a dense model has no routers to inspect");
  const auto tmpl = model_chat_template(*tf.tokenizer, tf.chat_template, tf.chat_template_origin);

  if (!prompt.empty()) {
    const std::string text =
        chat ? tmpl->render(std::vector<ChatMessage>{{"user", prompt}}, true) : prompt;
    const std::vector<int32_t> ids = encode_for_model(*tf.tokenizer, text);
    const PromptRoutes r = route_prompt(model, ids, top);
    if (json) {
      std::cout << prompt_json(r, *tf.tokenizer, ids).dump(2) << "\n";
      return 0;
    }
    print_prompt_table(r);
    if (tokens) print_token_grid(r, *tf.tokenizer, ids);
    return 0;
  }

  SftInputOptions so;
  so.domains = domains;
  so.max_per_domain = max_per_domain;
  so.max_len = max_len;
  so.tokenizer_source = model_path;
  so.quiet = quiet || json;
  const SftExamples ex = load_sft_examples(data_files, *tf.tokenizer, *tmpl, so);
  std::vector<LabelledSequence> seqs;
  for (size_t i = 0; i < ex.size(); ++i) seqs.push_back({ex.sequence(i), ex.mask(i), ex.domain[i]});
  Timer timer;
  std::optional<ProgressLine> progress;
  const RoutingMatrix m = route_dataset(model, seqs, ex.domains, [&](size_t done, size_t total) {
    if (quiet || json) return;
    if (!progress) progress.emplace(stderr, ProgressLine::stderr_is_terminal(), int64_t(total));
    const double s = timer.seconds();
    progress->update(int64_t(done), cat("[inspect] ", done, "/", total, " records  ", int64_t(double(done) / s + 0.5),
                                        " rec/s  ETA ", format_duration(double(total - done) * s / double(done))),
                     s);
  });
  if (!output.empty()) {
    const std::string html = routing_matrix_html(m, "Routing of " + model_path);
    write_file_atomic(output, html.data(), html.size());
  }
  if (json) {
    nlohmann::json dispatch = nlohmann::json::object();
    for (size_t d = 0; d < m.domains.size(); ++d) dispatch[m.domains[d]] = m.dispatch_accuracy(d);
    std::cout << nlohmann::json{{"domains", m.domains}, {"experts", m.experts}, {"layers", m.layers},
                                {"overall", m.overall}, {"per_layer", m.counts}, {"dispatch_accuracy", dispatch}}
                     .dump()
              << "\n";
    return 0;
  }
  std::cout << routing_matrix_table(m, per_layer);
  if (!output.empty()) std::cout << "heatmaps: " << output << "\n";
  return 0;
}

}  // namespace mf::cli
