#include "serve/batch_engine.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/timer.h"
#include "core/work_pool.h"
#include "infer/generate.h"

namespace mf {

struct BatchEngine::Pending {
  SequenceRequest request;
  SequenceSink sink;
  std::shared_ptr<SequenceTicket> ticket;
};

// A KV-cache sequence and, while busy, the sequence it serves. `cached` always mirrors what the
// cache holds for this slot, so a later prompt can reuse its prefix.
struct BatchEngine::Slot {
  int index = 0;
  std::vector<int32_t> cached;
  bool busy = false, decoding = false;
  std::unique_ptr<Pending> seq;
  size_t prefilled = 0;                 // prompt tokens in the cache
  int32_t next = -1;                    // sampled, not yet in the cache (while decoding)
  std::vector<int32_t> generated;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<StreamDecoder> decoder;
  std::unique_ptr<StopStringFilter> stops;
  SequenceResult result;
};

namespace {

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

// log-softmax of the scores the sampler draws from (after penalties, before temperature).
std::vector<float> log_softmax(std::span<const float> scores) {
  const float mx = *std::max_element(scores.begin(), scores.end());
  double z = 0;
  for (float v : scores) z += std::exp(double(v) - mx);
  const double lz = std::log(z) + mx;
  std::vector<float> out(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) out[i] = float(double(scores[i]) - lz);
  return out;
}

}  // namespace

BatchEngine::BatchEngine(Transformer& model, const Tokenizer& tokenizer, EngineOptions opts)
    : model_(model), tok_(tokenizer), opts_(opts), cache_(model.config(), opts.context, opts.parallel, opts.kv_cache) {
  MF_CHECK(opts_.parallel >= 1 && opts_.parallel <= 256, "serve: --parallel must be in [1, 256], got ", opts_.parallel);
  MF_CHECK(opts_.context >= 2, "serve: --ctx must be >= 2, got ", opts_.context);
  MF_CHECK(opts_.prefill_chunk >= 1, "serve: prefill chunk must be >= 1");
  MF_CHECK(opts_.max_queue >= 0, "serve: --max-queue must be >= 0");
  for (int i = 0; i < opts_.parallel; ++i) {
    auto s = std::make_unique<Slot>();
    s->index = i;
    slots_.push_back(std::move(s));
  }
  const ModelConfig& c = model_.config();
  for (int l = 0; l < c.num_layers; ++l)
    if (c.layer_is_moe(l)) moe_layers_.push_back(l);
  stats_.parallel = opts_.parallel;
  stats_.moe_layers = moe_layers_;
  for (int l : moe_layers_) stats_.expert_load.emplace_back(size_t(c.experts_in_layer(l)), 0);
  thread_ = std::thread([this] { run(); });
}

BatchEngine::~BatchEngine() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  for (auto& s : slots_)
    if (s->busy) finish(*s, "cancelled");
  for (auto& p : queue_) {
    SequenceResult r;
    r.finish_reason = "cancelled";
    r.prompt_tokens = int(p->request.prompt.size());
    if (p->sink.on_finish) p->sink.on_finish(r);
  }
}

std::shared_ptr<SequenceTicket> BatchEngine::submit(SequenceRequest request, SequenceSink sink) {
  MF_CHECK(!request.prompt.empty(), "the prompt is empty");
  MF_CHECK(int64_t(request.prompt.size()) < opts_.context, "the prompt has ", request.prompt.size(),
           " tokens; the context holds ", opts_.context, " tokens per sequence (prompt and completion)");
  MF_CHECK(request.max_tokens >= 1, "max_tokens must be >= 1");
  request.sampling.validate();
  auto p = std::make_unique<Pending>();
  p->request = std::move(request);
  p->sink = std::move(sink);
  p->ticket = std::make_shared<SequenceTicket>();
  auto ticket = p->ticket;
  {
    std::lock_guard lock(mutex_);
    const int free_slots = opts_.parallel - stats_.active;
    if (draining_ || stopping_) throw QueueFull("the server is shutting down");
    if (int(queue_.size()) >= free_slots + opts_.max_queue)
      throw QueueFull("all " + std::to_string(opts_.parallel) + " slots are busy and " +
                      std::to_string(opts_.max_queue) + " requests are waiting");
    queue_.push_back(std::move(p));
    stats_.queued = int(queue_.size());
  }
  wake_.notify_all();
  return ticket;
}

void BatchEngine::drain() {
  std::unique_lock lock(mutex_);
  draining_ = true;
  idle_.wait(lock, [this] { return queue_.empty() && stats_.active == 0; });
}

EngineStats BatchEngine::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void BatchEngine::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty() || stats_.active > 0; });
      if (stopping_) return;
      admit(lock);
    }
    for (auto& s : slots_)
      if (s->busy && s->seq->ticket->cancelled()) finish(*s, "cancelled");
    step();
    std::lock_guard lock(mutex_);
    if (queue_.empty() && stats_.active == 0) idle_.notify_all();
  }
}

// Called with the lock held: moves queued sequences into free slots.
void BatchEngine::admit(std::unique_lock<std::mutex>& lock) {
  (void)lock;
  while (!queue_.empty()) {
    std::unique_ptr<Pending>& p = queue_.front();
    if (p->ticket->cancelled()) {
      // Never started: report it as such (outside any slot).
      SequenceResult r;
      r.finish_reason = "cancelled";
      r.prompt_tokens = int(p->request.prompt.size());
      auto sink = std::move(p->sink);
      queue_.pop_front();
      if (sink.on_finish) sink.on_finish(r);
      continue;
    }
    Slot* best = nullptr;
    size_t best_common = 0;
    for (auto& s : slots_) {
      if (s->busy) continue;
      const size_t common = common_prefix(s->cached, p->request.prompt);
      if (!best || common > best_common) best = s.get(), best_common = common;
    }
    if (!best) break;
    Slot& s = *best;
    // Another slot, busy or not, may hold a longer start of this prompt (the system prompt every
    // request shares): its keys and values are copied instead of computed again.
    Slot* donor = nullptr;
    size_t donor_common = best_common;
    for (auto& d : slots_) {
      const size_t common = common_prefix(d->cached, p->request.prompt);
      if (common > donor_common) donor = d.get(), donor_common = common;
    }
    // The last prompt token must run again to give the logits of the first new token.
    const size_t reuse = std::min(donor ? donor_common : best_common, p->request.prompt.size() - 1);
    if (donor && reuse > best_common) {
      cache_.copy_prefix(donor->index, s.index, int(reuse));
      s.cached.assign(donor->cached.begin(), donor->cached.begin() + ptrdiff_t(reuse));
    }
    cache_.truncate(s.index, int(reuse));
    s.cached.resize(reuse);
    s.prefilled = reuse;
    s.busy = true;
    s.decoding = false;
    s.next = -1;
    s.generated.clear();
    s.seq = std::move(p);
    queue_.pop_front();
    const SequenceRequest& r = s.seq->request;
    s.sampler = std::make_unique<Sampler>(r.sampling);
    s.decoder = std::make_unique<StreamDecoder>(tok_, /*skip_special=*/true);
    s.stops = std::make_unique<StopStringFilter>(r.stop);
    s.result = SequenceResult{};
    s.result.prompt_tokens = int(r.prompt.size());
    s.result.cached_tokens = int(reuse);
    ++stats_.active;
    stats_.prompt_tokens += int64_t(r.prompt.size());
  }
  stats_.queued = int(queue_.size());
}

void BatchEngine::step() {
  std::vector<Slot*> decoding, prefilling;
  for (auto& s : slots_) {
    if (!s->busy) continue;
    (s->decoding ? decoding : prefilling).push_back(s.get());
  }
  // The least prefilled prompts first: short prompts finish quickly, none waits behind more than
  // one chunk of another. A chunk's size depends only on its own prompt, never on the step.
  std::stable_sort(prefilling.begin(), prefilling.end(),
                   [](const Slot* a, const Slot* b) { return a->prefilled < b->prefilled; });
  const auto chunk_of = [this](Slot* s) {
    return Chunk{s, std::min(s->seq->request.prompt.size() - s->prefilled, size_t(opts_.prefill_chunk))};
  };
  const int64_t invariant = model_.batch_invariant_rows();
  std::vector<Chunk> chunks;
  int64_t rows = int64_t(decoding.size()), prompt_rows = 0;
  for (Slot* s : prefilling) {
    const Chunk c = chunk_of(s);
    if (!chunks.empty() && prompt_rows + int64_t(c.tokens) > opts_.prefill_chunk) break;  // the step's budget
    if (rows + int64_t(c.tokens) > invariant && (rows > 0 || !chunks.empty())) {
      // Beside the others this chunk would change their kernels (or they its): it runs alone
      // first, as it would without them.
      if (chunks.empty() && !decoding.empty()) run_forward({}, {c});
      break;
    }
    chunks.push_back(c);
    rows += int64_t(c.tokens);
    prompt_rows += int64_t(c.tokens);
  }
  // A chunk run alone above touched only its own slot: the decoding ones go on as listed.
  if (!decoding.empty() || !chunks.empty()) run_forward(decoding, chunks);
}

void BatchEngine::run_forward(const std::vector<Slot*>& decoding, const std::vector<Chunk>& chunks) {
  std::vector<int32_t> tokens;
  std::vector<int> slot_ids, lengths;
  for (Slot* s : decoding) {
    tokens.push_back(s->next);
    slot_ids.push_back(s->index);
    lengths.push_back(1);
  }
  int64_t prompt_rows = 0;
  for (const Chunk& c : chunks) {
    const std::vector<int32_t>& prompt = c.slot->seq->request.prompt;
    tokens.insert(tokens.end(), prompt.begin() + ptrdiff_t(c.slot->prefilled),
                  prompt.begin() + ptrdiff_t(c.slot->prefilled + c.tokens));
    slot_ids.push_back(c.slot->index);
    lengths.push_back(int(c.tokens));
    prompt_rows += int64_t(c.tokens);
  }
  std::vector<Tensor> router_logits;
  ForwardOptions fo;
  fo.cache_slots = slot_ids;
  fo.lengths = lengths;
  if (!moe_layers_.empty()) fo.router_logits = &router_logits;
  Timer timer;
  Tensor logits;
  try {
    logits = model_.forward(tokens, int(lengths.size()), cache_, fo);
  } catch (const std::exception& e) {
    for (Slot* s : decoding) {
      cache_.truncate(s->index, int(s->cached.size()));
      finish(*s, "error", e.what());
    }
    for (const Chunk& c : chunks) {
      cache_.truncate(c.slot->index, int(c.slot->prefilled));
      finish(*c.slot, "error", e.what());
    }
    return;
  }
  {
    // A shared forward's time is split between decode and prefill by their rows.
    const double seconds = timer.seconds(), rows = double(tokens.size());
    std::lock_guard lock(mutex_);
    if (!decoding.empty()) ++stats_.decode_steps;
    ++stats_.forward_passes;
    stats_.decode_seconds += seconds * double(decoding.size()) / rows;
    stats_.prefill_seconds += seconds * double(prompt_rows) / rows;
    stats_.prefilled_tokens += prompt_rows;
  }
  // The rows that produced logits: every decoding sequence, and each chunk that ends its prompt.
  // Router logits of a row: the last position of its sequence.
  std::vector<Slot*> sampled(decoding.begin(), decoding.end());
  std::vector<int64_t> logit_row, route_row;
  int64_t end = 0;
  for (size_t i = 0; i < decoding.size(); ++i) {
    logit_row.push_back(int64_t(i));
    route_row.push_back(++end - 1);
    decoding[i]->cached.push_back(decoding[i]->next);
  }
  for (size_t i = 0; i < chunks.size(); ++i) {
    Slot& s = *chunks[i].slot;
    const std::vector<int32_t>& prompt = s.seq->request.prompt;
    s.cached.insert(s.cached.end(), prompt.begin() + ptrdiff_t(s.prefilled),
                    prompt.begin() + ptrdiff_t(s.prefilled + chunks[i].tokens));
    s.prefilled += chunks[i].tokens;
    end += int64_t(chunks[i].tokens);
    if (s.prefilled < prompt.size()) continue;
    sampled.push_back(&s);
    logit_row.push_back(int64_t(decoding.size() + i));
    route_row.push_back(end - 1);
  }
  // Router logits of the sampled rows only (a prompt's earlier positions produced no token).
  std::vector<Tensor> routes;
  for (const Tensor& t : router_logits) {
    const int64_t E = t.shape()[1];
    Tensor picked = Tensor::empty(DType::F32, {int64_t(sampled.size()), E});
    for (size_t i = 0; i < sampled.size(); ++i)
      std::copy_n(t.data<float>() + route_row[i] * E, E, picked.data<float>() + int64_t(i) * E);
    routes.push_back(std::move(picked));
  }
  if (!routes.empty()) count_routes(routes, int64_t(sampled.size()));
  const int64_t V = logits.shape()[1];
  // Sampling (a full-vocabulary softmax and sort per row when sampling) touches only its own
  // slot, so the rows are sampled in parallel; streaming and retiring stay in row order.
  std::vector<Choice> choices(sampled.size());
  auto sample = [&](int64_t i, int) {
    choices[size_t(i)] = choose(*sampled[size_t(i)], {logits.data<float>() + logit_row[size_t(i)] * V, size_t(V)},
                                routes.empty() ? nullptr : &routes, i);
  };
  parallel_chunks(int64_t(sampled.size()), sample);
  for (size_t i = 0; i < sampled.size(); ++i) emit(*sampled[i], std::move(choices[i]));
}

BatchEngine::Choice BatchEngine::choose(Slot& s, std::span<const float> logits, const std::vector<Tensor>* router_logits,
                                        int64_t row) {
  const SequenceRequest& r = s.seq->request;
  Choice c;
  // A model may pad its vocabulary past the tokenizer's; ids without a token are never drawn.
  std::vector<float> scores(logits.begin(), logits.begin() + std::min(logits.size(), size_t(tok_.vocab_size())));
  if (r.frequency_penalty != 0.0f || r.presence_penalty != 0.0f)
    apply_frequency_presence_penalties(scores, s.generated, r.frequency_penalty, r.presence_penalty);
  const int32_t token = s.sampler->sample(scores, s.cached);
  c.eos = std::find(r.eos_ids.begin(), r.eos_ids.end(), token) != r.eos_ids.end();
  TokenEvent& ev = c.event;
  ev.token = token;
  if (c.eos) return c;
  if (r.top_logprobs >= 0) {
    const std::vector<float> lp = log_softmax(scores);
    ev.chosen = {token, lp[size_t(token)]};
    std::vector<int32_t> order(lp.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
    const size_t k = std::min(order.size(), size_t(r.top_logprobs));
    std::partial_sort(order.begin(), order.begin() + ptrdiff_t(k), order.end(),
                      [&](int32_t a, int32_t b) { return lp[size_t(a)] > lp[size_t(b)] || (lp[size_t(a)] == lp[size_t(b)] && a < b); });
    for (size_t i = 0; i < k; ++i) ev.top.push_back({order[i], lp[size_t(order[i])]});
  }
  if (r.routes && router_logits) {
    for (size_t m = 0; m < router_logits->size(); ++m) {
      const Tensor& t = (*router_logits)[m];
      const int64_t E = t.shape()[1];
      const float* x = t.data<float>() + row * E;
      const float mx = *std::max_element(x, x + E);
      double z = 0;
      for (int64_t e = 0; e < E; ++e) z += std::exp(double(x[e]) - mx);
      LayerRoute lr;
      lr.layer = moe_layers_[m];
      for (int64_t e = 0; e < E; ++e) lr.experts.push_back({int(e), float(std::exp(double(x[e]) - mx) / z)});
      std::sort(lr.experts.begin(), lr.experts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
      ev.routes.push_back(std::move(lr));
    }
  }
  return c;
}

void BatchEngine::emit(Slot& s, Choice c) {
  const SequenceRequest& r = s.seq->request;
  if (s.seq->ticket->cancelled()) return finish(s, "cancelled");
  if (c.eos) return finish(s, "stop");
  const int32_t token = c.event.token;
  s.generated.push_back(token);
  ++s.result.completion_tokens;
  {
    std::lock_guard lock(mutex_);
    ++stats_.generated_tokens;
  }
  c.event.text = s.stops->push(s.decoder->push(token));
  if (s.seq->sink.on_token) s.seq->sink.on_token(c.event);
  if (s.stops->stopped()) return finish(s, "stop");
  if (int(s.generated.size()) >= r.max_tokens || int(s.cached.size()) + 1 >= opts_.context) return finish(s, "length");
  s.next = token;
  s.decoding = true;
}

void BatchEngine::finish(Slot& s, const std::string& reason, const std::string& error) {
  s.result.finish_reason = reason;
  s.result.error = error;
  if (reason != "cancelled" && reason != "error" && !s.stops->stopped()) {
    // Bytes held back (a partial character, the start of a stop string that never completed).
    std::string tail = s.stops->push(s.decoder->flush());
    if (!s.stops->stopped()) tail += s.stops->flush();
    s.result.trailing_text = tail;
  }
  auto sink = std::move(s.seq->sink);
  const SequenceResult result = s.result;
  s.seq.reset();
  s.busy = s.decoding = false;
  s.next = -1;
  {
    std::lock_guard lock(mutex_);
    --stats_.active;
    ++stats_.sequences_finished;
    if (reason == "cancelled") ++stats_.sequences_cancelled;
  }
  if (sink.on_finish) sink.on_finish(result);
}

void BatchEngine::count_routes(const std::vector<Tensor>& router_logits, int64_t rows) {
  const ModelConfig& c = model_.config();
  const int k = c.routing.policy == RouterPolicy::Switch ? 1 : std::max(1, c.top_k);
  std::lock_guard lock(mutex_);
  for (size_t m = 0; m < router_logits.size() && m < stats_.expert_load.size(); ++m) {
    const Tensor& t = router_logits[m];
    const int64_t E = t.shape()[1];
    std::vector<int> order(size_t(E), 0);
    for (int64_t row = 0; row < rows; ++row) {
      const float* x = t.data<float>() + row * E;
      for (int64_t e = 0; e < E; ++e) order[size_t(e)] = int(e);
      const size_t kk = std::min(size_t(k), size_t(E));
      std::partial_sort(order.begin(), order.begin() + ptrdiff_t(kk), order.end(),
                        [&](int a, int b) { return x[a] > x[b]; });
      for (size_t i = 0; i < kk; ++i) ++stats_.expert_load[m][size_t(order[i])];
    }
  }
}

}  // namespace mf
