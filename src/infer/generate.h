// Prefill + decode loop: KV-cache prefix reuse, sampling, EOS and stop strings, streaming.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "infer/language_model.h"
#include "infer/sampling.h"
#include "tokenizer/tokenizer.h"

namespace mf {

// The tokens a LanguageModel's cache holds, so that a new prompt sharing a prefix with them
// (the next chat turn) only prefills what is new.
class ModelContext {
 public:
  explicit ModelContext(LanguageModel& model) : model_(model) { model_.truncate(0); }
  // Makes the cache hold exactly `prompt`, keeping the longest common prefix; returns the
  // last position's logits. Returns how many tokens were reused through `reused`.
  std::vector<float> prefill(std::span<const int32_t> prompt, int* reused = nullptr);
  std::vector<float> step(int32_t token);  // appends one token
  void reset();
  const std::vector<int32_t>& tokens() const { return tokens_; }
  LanguageModel& model() { return model_; }
  int context_length() const { return model_.context_length(); }

 private:
  LanguageModel& model_;
  std::vector<int32_t> tokens_;
};

struct GenerateOptions {
  int max_tokens = 256;
  SamplingParams sampling;
  std::vector<std::string> stop;      // stop strings: never emitted, may span tokens
  std::vector<int32_t> eos_ids;       // any of these ends generation (not emitted)
  // > 0: the model sees at most the last `window` tokens, as a model trained on windows of that
  // length expects (nanoGPT and makeMoE crop their context the same way). Past the window the
  // cache is rebuilt from the last window tokens at every step, so positions restart at 0.
  int window = 0;
  // When set, generation stops before the next token once it reads true (finish_reason
  // "cancelled"; the text so far is kept). Another thread sets it, e.g. chat's Ctrl-C watcher;
  // the caller owns it and clears it before the next call.
  const std::atomic<bool>* cancel = nullptr;
};

struct GenerateStats {
  int prompt_tokens = 0, reused_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_cpu_seconds = 0, decode_cpu_seconds = 0;  // every thread of the process
  double prefill_tokens_per_second() const;   // over the tokens actually prefilled
  double decode_tokens_per_second() const;
};

struct GenerateResult {
  std::string text;                   // without the stop string
  std::vector<int32_t> tokens;        // sampled tokens (EOS excluded)
  std::string finish_reason;          // "eos" | "stop" | "length" | "context" | "cancelled"
  GenerateStats stats;
};

// Receives printable text as it is produced (whole UTF-8 characters only).
using TextCallback = std::function<void(std::string_view)>;

// Generates after `prompt` (already tokenized, BOS included if wanted). Throws mf::Error when
// the prompt alone does not fit the context.
GenerateResult generate(ModelContext& ctx, const Tokenizer& tok, std::span<const int32_t> prompt,
                        const GenerateOptions& opts, const TextCallback& on_text = {});

// Holds back text that could still be the start of a stop string; a helper of generate().
class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Returns the text safe to emit now; sets stopped() once a stop string is complete.
  std::string push(std::string_view piece);
  std::string flush();   // everything still held (generation ended for another reason)
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace mf
