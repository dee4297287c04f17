#include "infer/generate.h"

#include <algorithm>

#include "core/error.h"
#include "core/process_stats.h"
#include "core/timer.h"

namespace mf {

std::vector<float> ModelContext::prefill(std::span<const int32_t> prompt, int* reused) {
  MF_CHECK(!prompt.empty(), "generate: empty prompt (nothing to condition on)");
  MF_CHECK(int64_t(prompt.size()) <= model_.context_length(), "generate: prompt has ", prompt.size(),
           " tokens but the context holds ", model_.context_length());
  size_t common = 0;
  while (common < tokens_.size() && common < prompt.size() && tokens_[common] == prompt[common]) ++common;
  // The last prompt token must run again to produce logits, even if it is cached.
  if (common == prompt.size()) --common;
  model_.truncate(int(common));
  tokens_.resize(common);
  if (reused) *reused = int(common);
  auto rest = prompt.subspan(common);
  std::vector<float> logits = model_.forward(rest);
  tokens_.insert(tokens_.end(), rest.begin(), rest.end());
  return logits;
}

std::vector<float> ModelContext::step(int32_t token) {
  MF_CHECK(int(tokens_.size()) < model_.context_length(), "generate: context of ", model_.context_length(),
           " tokens is full");
  std::vector<float> logits = model_.forward(std::span<const int32_t>(&token, 1));
  tokens_.push_back(token);
  return logits;
}

void ModelContext::reset() {
  model_.truncate(0);
  tokens_.clear();
}

double GenerateStats::prefill_tokens_per_second() const {
  int n = prompt_tokens - reused_tokens;
  return prefill_seconds > 0 ? n / prefill_seconds : 0.0;
}

double GenerateStats::decode_tokens_per_second() const {
  // The first sampled token comes from the prefill logits; decode steps are the rest.
  int n = std::max(0, generated_tokens - 1);
  return decode_seconds > 0 ? n / decode_seconds : 0.0;
}

std::string StopStringFilter::push(std::string_view piece) {
  if (stopped_) return "";
  held_ += piece;
  size_t first = std::string::npos;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    size_t p = held_.find(s);
    if (p != std::string::npos) first = std::min(first, p);
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Keep the longest tail that a stop string could still complete.
  size_t keep = 0;
  for (const auto& s : stops_)
    for (size_t n = std::min(s.size() - (s.empty() ? 0 : 1), held_.size()); n > keep; --n)
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringFilter::flush() {
  std::string out = stopped_ ? "" : held_;
  held_.clear();
  return out;
}

GenerateResult generate(ModelContext& ctx, const Tokenizer& tok, std::span<const int32_t> prompt,
                        const GenerateOptions& opts, const TextCallback& on_text) {
  MF_CHECK(opts.max_tokens >= 0, "generate: max_tokens must be >= 0, got ", opts.max_tokens);
  GenerateResult res;
  res.stats.prompt_tokens = int(prompt.size());
  Sampler sampler(opts.sampling);
  StreamDecoder decoder(tok, /*skip_special=*/true);
  StopStringFilter stops(opts.stop);
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    res.text += text;
    if (on_text) on_text(text);
  };

  MF_CHECK(opts.window >= 0, "generate: window must be >= 0, got ", opts.window);
  if (opts.window > 0 && int(prompt.size()) > opts.window) prompt = prompt.subspan(prompt.size() - size_t(opts.window));
  Timer timer;
  double cpu = process_cpu_seconds();
  std::vector<float> logits = ctx.prefill(prompt, &res.stats.reused_tokens);
  res.stats.prefill_seconds = timer.seconds();
  res.stats.prefill_cpu_seconds = process_cpu_seconds() - cpu;
  timer.reset();
  cpu = process_cpu_seconds();

  res.finish_reason = "length";
  for (int i = 0; i < opts.max_tokens; ++i) {
    if (opts.cancel && opts.cancel->load(std::memory_order_relaxed)) {
      res.finish_reason = "cancelled";
      break;
    }
    // A model may pad its vocabulary past the tokenizer's; ids without a token are never drawn.
    std::span<const float> scores(logits.data(), std::min(logits.size(), size_t(tok.vocab_size())));
    int32_t next = sampler.sample(scores, ctx.tokens());
    if (std::find(opts.eos_ids.begin(), opts.eos_ids.end(), next) != opts.eos_ids.end()) {
      res.finish_reason = "eos";
      break;
    }
    res.tokens.push_back(next);
    ++res.stats.generated_tokens;
    emit(stops.push(decoder.push(next)));
    if (stops.stopped()) {
      res.finish_reason = "stop";
      break;
    }
    if (i + 1 == opts.max_tokens) break;
    if (int(ctx.tokens().size()) >= ctx.context_length()) {
      res.finish_reason = "context";
      break;
    }
    if (opts.window > 0 && int(ctx.tokens().size()) + 1 > opts.window) {
      std::vector<int32_t> recent(ctx.tokens().end() - (opts.window - 1), ctx.tokens().end());
      recent.push_back(next);
      ctx.reset();
      logits = ctx.prefill(recent);
    } else {
      logits = ctx.step(next);
    }
  }
  if (!stops.stopped()) {
    emit(stops.push(decoder.flush()));
    if (!stops.stopped()) emit(stops.flush());
    else res.finish_reason = "stop";
  }
  res.stats.decode_seconds = timer.seconds();
  res.stats.decode_cpu_seconds = process_cpu_seconds() - cpu;
  return res;
}

}  // namespace mf
