#include "train/session.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/process_stats.h"
#include "data/text_corpus.h"
#include "data/token_cache.h"
#include "infer/bundle.h"
#include "infer/generate.h"
#include "infer/model_files.h"
#include "model/config_json.h"
#include "model/init.h"
#include "model/load.h"
#include "model/transformer.h"
#include "data/sft_record.h"
#include "train/sft_data.h"
#include "train/window_data.h"

namespace mf {
namespace {

namespace fs = std::filesystem;

// The tokenizer source a recipe names: the init model's own, or a path.
std::string tokenizer_source(const Recipe& r) { return r.tokenizer == "model" ? r.init : r.tokenizer; }

// The files a tokenizer source is read from (a model directory's tokenizer files, else the file
// itself), for the token cache's key.
std::vector<std::string> tokenizer_files(const std::string& source) {
  std::error_code ec;
  if (!fs::is_directory(source, ec)) return {source};
  std::vector<std::string> out;
  for (const char* name : {"tokenizer.json", "tokenizer_char.json", "tokenizer_config.json"})
    if (fs::is_regular_file(fs::path(source) / name, ec)) out.push_back((fs::path(source) / name).string());
  return out;
}

// The chat template that goes with a recipe's tokenizer (its model's own, else ChatML).
std::unique_ptr<ChatTemplate> recipe_chat_template(const Recipe& r, const Tokenizer& tok) {
  std::string source, origin;
  const std::string src = tokenizer_source(r);
  if (r.tokenizer != "char") {
    if (is_gguf_path(src)) {
      TokenizerFiles tf = load_gguf_tokenizer_files(src);
      source = tf.chat_template;
      origin = tf.chat_template_origin;
    } else if (fs::is_directory(src)) {
      TokenizerFiles tf = load_hf_tokenizer_files(src);
      source = tf.chat_template;
      origin = tf.chat_template_origin;
    }
  }
  return model_chat_template(tok, source, origin);
}

std::unique_ptr<Tokenizer> make_tokenizer(const Recipe& r, const std::vector<std::string>& docs) {
  if (r.tokenizer == "char") {
    std::string all;
    for (const auto& d : docs) all += d;
    return make_char_tokenizer(all);
  }
  if (r.tokenizer == "model") {
    MF_CHECK(r.init != "scratch", "recipe: 'tokenizer: model' needs 'model.init' to name a model");
    TokenizerFiles tf = is_gguf_path(r.init) ? load_gguf_tokenizer_files(r.init) : load_hf_tokenizer_files(r.init);
    return std::move(tf.tokenizer);
  }
  if (is_gguf_path(r.tokenizer)) return std::move(load_gguf_tokenizer_files(r.tokenizer).tokenizer);
  return load_hf_tokenizer(r.tokenizer);
}

// The tokenizer beside the exported weights, so `moeforge generate -m DIR` works.
void save_tokenizer(const Recipe& r, const Tokenizer& tok, const fs::path& model_dir) {
  if (tok.kind == "char") {
    save_char_tokenizer(tok, (model_dir / kCharTokenizerFile).string());
    return;
  }
  const std::string source = tokenizer_source(r);
  if (fs::is_directory(source) || is_gguf_path(source)) {
    copy_tokenizer_files(source, model_dir.string());
    return;
  }
  // A bare tokenizer.json: copy it and the tokenizer_config.json beside it.
  const fs::path src(source);
  fs::copy_file(src, model_dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  const fs::path cfg = src.parent_path() / "tokenizer_config.json";
  if (fs::exists(cfg)) fs::copy_file(cfg, model_dir / "tokenizer_config.json", fs::copy_options::overwrite_existing);
}

ModelWeights make_weights(const Recipe& r, const Tokenizer& tok) {
  if (r.init != "scratch") {
    ModelWeights w = load_model_weights(r.init);
    MF_CHECK(w.config.vocab_size == tok.vocab_size(), r.init, ": the model's vocabulary (", w.config.vocab_size,
             ") does not match the tokenizer's (", tok.vocab_size(), ")");
    return w;
  }
  nlohmann::json cfg = r.config.is_object() ? r.config : nlohmann::json::object();
  if (!cfg.contains("vocab_size")) cfg["vocab_size"] = tok.vocab_size();
  MF_CHECK(cfg["vocab_size"] == tok.vocab_size(), r.path, ": model.config.vocab_size ", cfg["vocab_size"].dump(),
           " does not match the tokenizer's ", tok.vocab_size());
  // A hand-written config: a key moeforge does not read is a typo or a feature it lacks, and
  // either way the model would not be the one written down.
  std::vector<std::string> unread;
  ModelConfig config;
  try {
    config = config_from_hf_json(cfg, &unread);
  } catch (const Error& e) {
    fail(r.path, ": model.config: ", e.what());
  }
  std::erase(unread, "architectures");  // informational: model_type decides
  if (!unread.empty()) {
    std::string keys;
    for (const std::string& k : unread) keys += (keys.empty() ? "" : ", ") + k;
    fail(r.path, ": model.config has keys moeforge does not read for model_type '", config.model_type, "': ", keys,
         " (misspelt, or a feature moeforge does not have)");
  }
  return init_random_weights(config, r.init_seed, r.init_std);
}

std::string sample_text(const Recipe& r, const Tokenizer& tok, const ChatTemplate* chat, const std::string& model_dir,
                        uint64_t seed) {
  auto t = std::make_unique<Transformer>(load_model_weights(model_dir));
  const int ctx = std::min(t->config().max_position_embeddings, 4096);
  std::unique_ptr<LanguageModel> lm = make_language_model(std::move(t), ctx);
  ModelContext mc(*lm);
  GenerateOptions o;
  o.max_tokens = r.sample_tokens;
  o.sampling.temperature = r.sample_temperature;
  o.sampling.top_k = 0;
  o.sampling.top_p = 1.0f;
  o.sampling.min_p = 0.0f;
  o.sampling.seed = seed;
  if (tok.eos_id >= 0) o.eos_ids.push_back(tok.eos_id);
  if (chat) {
    // An instruction-tuned model is sampled the way it was trained: one chat turn.
    const std::vector<ChatMessage> messages{{"user", r.sample_prompt}};
    const std::string prompt_text = chat->render(messages, true);
    if (auto id = tok.token_to_id("<|im_end|>")) o.eos_ids.push_back(*id);
    return prompt_text + generate(mc, tok, encode_for_model(tok, prompt_text), o).text;
  }
  // Text models are sampled with the context they were trained on: the last seq_len + 1 tokens.
  o.window = r.trainer.seq_len + 1;
  const std::vector<int32_t> prompt = tok.encode(r.sample_prompt, false);
  return r.sample_prompt + generate(mc, tok, prompt, o).text;
}

}  // namespace

namespace {

// The recipe's data.sampling and data.domain_weights as weights over the examples' domains.
SftSampling sft_sampling(const Recipe& r, const std::vector<std::string>& domains) {
  SftSampling s;
  if (r.sampling != "balanced") return s;
  s.domain_weights.assign(domains.size(), 1.0);
  for (const auto& [name, w] : r.domain_weights) {
    size_t d = 0;
    while (d < domains.size() && domain_key(domains[d]) != domain_key(name)) ++d;
    if (d == domains.size()) {
      std::string known;
      for (const std::string& k : domains) known += (known.empty() ? "" : ", ") + k;
      fail(r.path, ": 'data.domain_weights.", name, "': no such domain in the training data (", known, ")");
    }
    s.domain_weights[d] = w;
  }
  return s;
}

}  // namespace

std::unique_ptr<TrainingSession> prepare_training_session(const Recipe& recipe, bool quiet) {
  auto s = std::make_unique<TrainingSession>();
  s->recipe = recipe;
  const Recipe& r = s->recipe;
  const bool sft = r.data_format == "sft" || (r.data_format == "auto" && looks_like_sft_jsonl(r.train_files.front()));
  // Pretraining text is read first only for a char tokenizer, which is built from it.
  std::vector<std::string> docs;
  if (!sft) docs = read_text_documents(r.train_files);
  std::unique_ptr<Tokenizer> tok = make_tokenizer(r, docs);
  std::unique_ptr<ChatTemplate>& chat = s->chat;
  TokenSplit& split = s->split;
  SftExamples &sft_train = s->sft_train, &sft_valid = s->sft_valid;
  std::unique_ptr<TrainingData>& data = s->data;
  if (sft) {
    chat = recipe_chat_template(r, *tok);
    SftInputOptions so;
    so.domains = r.domains;
    so.skip_bad = r.skip_bad;
    so.assistant_turns = assistant_turns_from_name(r.loss_on);
    so.max_len = r.trainer.seq_len + 1;  // seq_len predicted positions
    so.tokenizer_source = tokenizer_source(r);
    so.quiet = quiet;
    sft_train = load_sft_examples(r.train_files, *tok, *chat, so);
    if (!r.valid_files.empty()) {
      sft_valid = load_sft_examples(r.valid_files, *tok, *chat, so);
    } else {
      const size_t n_valid = std::max<size_t>(1, size_t(double(sft_train.size()) * r.valid_fraction));
      MF_CHECK(sft_train.size() > n_valid, r.path, ": too few examples (", sft_train.size(),
               ") to hold out a validation part; name one with data.valid");
      sft_valid = slice_sft_examples(sft_train, sft_train.size() - n_valid, sft_train.size());
      sft_train = slice_sft_examples(sft_train, 0, sft_train.size() - n_valid);
    }
    SftBatching b;
    b.max_rows = r.trainer.batch;
    b.max_tokens = int64_t(r.trainer.batch) * (r.trainer.seq_len + 1);
    b.pad_id = tok->pad_id >= 0 ? tok->pad_id : std::max(tok->eos_id, 0);
    data = std::make_unique<SftData>(sft_train, sft_valid, b, r.trainer.eval_windows, r.trainer.seed,
                                     sft_sampling(r, sft_train.domains));
  } else {
    MF_CHECK(r.sampling == "mix", r.path, ": 'data.sampling: ", r.sampling, "' draws instruction records by domain; ",
             "this recipe's data is plain text");
    // Tokenizing is the slow part for BPE; the tokens are cached keyed by files and tokenizer.
    std::string fingerprint = tok->kind + ":" + std::to_string(tok->vocab_size());
    if (r.tokenizer != "char") fingerprint += ":" + corpus_cache_key(tokenizer_files(tokenizer_source(r)), "");
    const CachedTokens cached = load_or_tokenize(default_token_cache_dir(), corpus_cache_key(r.train_files, fingerprint),
                                                 [&] { return tokenize_documents(*tok, docs); });
    if (!quiet)
      std::fprintf(stderr, "tokens: %zu (%s %s)\n", cached.tokens.size(),
                   cached.hit ? "read from" : "tokenized, cached to", cached.path.c_str());
    split = split_tail(cached.tokens, r.valid_fraction);
    data = std::make_unique<WindowData>(split, r.trainer.batch, r.trainer.seq_len, r.trainer.eval_windows,
                                        r.trainer.seed);
  }
  s->weights = make_weights(r, *tok);
  s->sft = sft;
  s->data_sizes = sft ? cat(sft_train.size(), " train / ", sft_valid.size(), " valid examples")
                      : cat(split.train.size(), " train / ", split.valid.size(), " valid tokens");
  s->tokenizer = std::move(tok);
  return s;
}

void write_session_tokenizer(const TrainingSession& s, const std::string& model_dir) {
  save_tokenizer(s.recipe, *s.tokenizer, model_dir);
}

nlohmann::json finish_training_session(const TrainingSession& s, const TrainResult& res, bool quiet) {
  const Recipe& r = s.recipe;
  const Tokenizer& tok = *s.tokenizer;
  save_tokenizer(r, tok, res.model_dir);
  if (res.best_step > 0) save_tokenizer(r, tok, (fs::path(res.out_dir) / "best").string());
  nlohmann::json summary = {{"train_loss", res.train_loss},  {"valid_loss", res.valid_loss},
                            {"valid_ppl", std::exp(res.valid_loss)}, {"steps", res.steps},
                            {"tokens_per_s", res.tokens_per_s}, {"wall_s", res.wall_s},
                            {"output", res.out_dir},           {"model", res.model_dir},
                            {"best_valid_loss", res.best_valid_loss}, {"best_step", res.best_step},
                            {"peak_rss_mib", std::round(peak_rss_mib())}};
  if (!r.sample_prompt.empty()) {
    const std::string text = sample_text(r, tok, s.chat.get(), res.model_dir, r.trainer.seed);
    const std::string path = (fs::path(res.out_dir) / "sample.txt").string();
    write_file_atomic(path, text.data(), text.size());
    summary["sample"] = path;
    if (!quiet) std::cerr << "--- sample ---\n" << text << "\n--------------\n";
  }
  summary["recipe"] = r.path;
  const std::string text = summary.dump() + "\n";
  write_file_atomic((fs::path(res.out_dir) / "summary.json").string(), text.data(), text.size());
  return summary;
}

}  // namespace mf
