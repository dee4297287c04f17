#include "serve/server.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>

#include "core/error.h"
#include "core/timer.h"
#include "serve/api_error.h"
#include "serve/completion_request.h"
#include "serve/idle_connections.h"
#include "serve/openai_json.h"
#include "serve/web_page.inc"

namespace mf {

namespace {

using Clock = std::chrono::steady_clock;

// What one request's handler receives from the engine thread.
struct Channel {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<TokenEvent> events;
  bool finished = false;
  SequenceResult result;
};

SequenceSink sink_into(const std::shared_ptr<Channel>& ch) {
  SequenceSink s;
  s.on_token = [ch](const TokenEvent& e) {
    {
      std::lock_guard lock(ch->mutex);
      ch->events.push_back(e);
    }
    ch->ready.notify_all();
  };
  s.on_finish = [ch](const SequenceResult& r) {
    {
      std::lock_guard lock(ch->mutex);
      ch->result = r;
      ch->finished = true;
    }
    ch->ready.notify_all();
  };
  return s;
}

// Takes what the engine produced so far, waiting up to `wait`; false once finished and drained.
bool take(Channel& ch, std::deque<TokenEvent>& out, std::chrono::milliseconds wait) {
  std::unique_lock lock(ch.mutex);
  ch.ready.wait_for(lock, wait, [&] { return !ch.events.empty() || ch.finished; });
  out.swap(ch.events);
  return !(ch.finished && out.empty());
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  if (e.status == 503) res.set_header("Retry-After", "1");
  res.set_content(json_text(e.to_json()), "application/json");
}

// A request prepared for the engine, and what its answer needs.
struct Job {
  CompletionRequest request;
  std::string id, model;
  int64_t created = 0;
  std::shared_ptr<Channel> channel;
  std::shared_ptr<SequenceTicket> ticket;
};

// "moeforge": {"routes": [{"layer", "experts": [{"expert", "name", "prob"}]}]}: the extension.
nlohmann::json routes_json(const std::vector<LayerRoute>& routes, const std::vector<std::string>& names) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerRoute& r : routes) {
    nlohmann::json experts = nlohmann::json::array();
    for (const auto& [e, p] : r.experts)
      experts.push_back({{"expert", e},
                         {"name", size_t(e) < names.size() ? names[size_t(e)] : "expert" + std::to_string(e)},
                         {"prob", p}});
    layers.push_back({{"layer", r.layer}, {"experts", std::move(experts)}});
  }
  return layers;
}

TokenLogprob logprob_entry(const Tokenizer& tok, const TokenEvent& e) {
  TokenLogprob t;
  t.token = tok.decode(std::span<const int32_t>(&e.token, 1));
  t.logprob = e.chosen.logprob;
  for (const IdLogprob& x : e.top) t.top.push_back({tok.decode(std::span<const int32_t>(&x.token, 1)), x.logprob});
  return t;
}

// A sequence that ended without an answer: cancelled by the time limit, or failed.
ApiError unanswered(const SequenceResult& r, int timeout_seconds) {
  if (r.finish_reason == "error") return ApiError::internal("generation failed: " + r.error);
  return ApiError{504, "the request ran past the server's time limit of " + std::to_string(timeout_seconds) + " s",
                  "timeout_error", "", ""};
}

// Waits for the engine and writes the answer: one JSON body, or Server-Sent Events as tokens come.
void answer(const std::shared_ptr<Job>& job, bool chat, httplib::Response& res, const Tokenizer& tok,
            const std::vector<std::string>& names, int timeout_seconds) {
  const CompletionRequest& cr = job->request;
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_seconds);
  if (!cr.stream) {
    std::string text;
    std::vector<TokenLogprob> logprobs;
    nlohmann::json routes = nlohmann::json::array();
    std::deque<TokenEvent> events;
    for (bool more = true; more;) {
      more = take(*job->channel, events, std::chrono::milliseconds(200));
      for (const TokenEvent& e : events) {
        text += e.text;
        if (cr.logprobs) logprobs.push_back(logprob_entry(tok, e));
        if (cr.routes) routes.push_back({{"token", e.token}, {"layers", routes_json(e.routes, names)}});
      }
      events.clear();
      if (Clock::now() > deadline) job->ticket->cancel();
    }
    const SequenceResult r = job->channel->result;
    if (r.finish_reason == "cancelled" || r.finish_reason == "error") return send_error(res, unanswered(r, timeout_seconds));
    text += r.trailing_text;
    const nlohmann::json usage = usage_json(r.prompt_tokens, r.completion_tokens);
    nlohmann::json j =
        chat ? chat_completion_json(job->id, job->created, job->model, text, r.finish_reason, usage,
                                    cr.logprobs ? chat_logprobs_json(logprobs) : nlohmann::json(nullptr))
             : completion_json(job->id, job->created, job->model, text, r.finish_reason, usage,
                               cr.logprobs ? completion_logprobs_json(logprobs) : nlohmann::json(nullptr));
    if (cr.routes) j["moeforge"] = {{"routes", routes}};
    res.set_content(json_text(j), "application/json");
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream", [job, chat, &tok, names, timeout_seconds, deadline](size_t, httplib::DataSink& sink) {
        const CompletionRequest& cr = job->request;
        const bool usage = cr.include_usage;
        auto send = [&](const std::string& event) {
          if (sink.write(event.data(), event.size())) return true;
          job->ticket->cancel();  // the client went away: free the slot now
          return false;
        };
        size_t offset = 0;  // bytes of text sent (completions' text_offset)
        auto chunk = [&](const std::string& text, const std::optional<std::string>& finish,
                         const std::vector<TokenLogprob>& lps, const TokenEvent* ev) {
          nlohmann::json j;
          if (chat) {
            const nlohmann::json lp = cr.logprobs && !lps.empty() ? chat_logprobs_json(lps) : nlohmann::json(nullptr);
            j = chat_chunk_json(job->id, job->created, job->model, std::nullopt,
                                finish ? std::optional<std::string>() : std::optional<std::string>(text), finish, lp,
                                usage);
          } else {
            const nlohmann::json lp =
                cr.logprobs && !lps.empty() ? completion_logprobs_json(lps, offset) : nlohmann::json(nullptr);
            j = completion_chunk_json(job->id, job->created, job->model, text, finish, lp, usage);
          }
          offset += text.size();
          if (ev && cr.routes) j["moeforge"] = {{"token", ev->token}, {"routes", routes_json(ev->routes, names)}};
          return send(sse_event(j));
        };
        if (chat && !send(sse_event(chat_chunk_json(job->id, job->created, job->model, std::string("assistant"),
                                                    std::string(), std::nullopt, nullptr, usage))))
          return false;
        std::deque<TokenEvent> events;
        for (bool more = true; more;) {
          more = take(*job->channel, events, std::chrono::milliseconds(100));
          for (const TokenEvent& e : events) {
            std::vector<TokenLogprob> lps;
            if (cr.logprobs) lps.push_back(logprob_entry(tok, e));
            if ((!e.text.empty() || cr.logprobs || cr.routes) && !chunk(e.text, std::nullopt, lps, &e)) return false;
          }
          events.clear();
          if (!sink.is_writable()) {
            job->ticket->cancel();
            return false;
          }
          if (Clock::now() > deadline) job->ticket->cancel();
        }
        const SequenceResult r = job->channel->result;
        if (r.finish_reason == "cancelled" || r.finish_reason == "error") {
          send(sse_event(unanswered(r, timeout_seconds).to_json()));
        } else {
          if (!r.trailing_text.empty() && !chunk(r.trailing_text, std::nullopt, {}, nullptr)) return false;
          if (!chunk("", r.finish_reason, {}, nullptr)) return false;
          if (usage) {
            const nlohmann::json u = usage_json(r.prompt_tokens, r.completion_tokens);
            if (!send(sse_event(chat ? chat_usage_chunk_json(job->id, job->created, job->model, u)
                                     : completion_usage_chunk_json(job->id, job->created, job->model, u))))
              return false;
          }
        }
        send(sse_done());
        sink.done();
        return true;
      });
}

}  // namespace

Server::Server(const ModelBundle& bundle, const ModelConfig& config, BatchEngine& engine, ServerOptions opts)
    : bundle_(bundle), config_(config), engine_(engine), opts_(std::move(opts)), http_(std::make_unique<httplib::Server>()) {
  started_ = double(std::time(nullptr));
  const int threads = opts_.http_threads > 0 ? opts_.http_threads
                                             : engine_.options().parallel + engine_.options().max_queue + 8;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http_->set_payload_max_length(opts_.max_body_bytes);
  // Each streamed token is a small write: without TCP_NODELAY, Nagle's algorithm holds it until
  // the client's delayed ACK, adding tens of milliseconds to inter-token latency.
  http_->set_tcp_nodelay(true);
  // httplib closes a kept-alive connection after 5 requests by default; a client that sends its
  // next request at that moment sees the connection drop. Keep busy connections open.
  http_->set_keep_alive_max_count(100000);
  // An idle connection must outlive the client pools' own idle expiry (5 s in httpx, which the
  // openai client uses, and in Node): with httplib's 5 s both ends gave up at the same moment
  // and a request sent then met a closed connection. stop() ends idle connections at once.
  http_->set_keep_alive_timeout(kKeepAliveIdleSeconds);
  http_->set_read_timeout(opts_.timeout_seconds, 0);
  http_->set_write_timeout(opts_.timeout_seconds, 0);
  routes();
}

Server::~Server() = default;

void Server::bind() {
  if (opts_.port == 0) {
    port_ = http_->bind_to_any_port(opts_.host);
    MF_CHECK(port_ > 0, "serve: cannot bind ", opts_.host, " to any port");
  } else {
    MF_CHECK(http_->bind_to_port(opts_.host, opts_.port), "serve: cannot bind ", opts_.host, ":", opts_.port,
             " (in use, or not an address of this machine)");
    port_ = opts_.port;
  }
}

void Server::listen() { http_->listen_after_bind(); }

void Server::stop() {
  http_->stop();
  shut_reading_side_of_connections(port_);
}

void Server::routes() {
  httplib::Server& s = *http_;
  const std::string key = opts_.api_key;
  s.set_pre_routing_handler([this, key](const httplib::Request& req, httplib::Response& res) {
    // The page itself and /health are open: the page asks for the key when the API answers 401.
    if (key.empty() || req.path == "/health" || req.path == "/") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth == "Bearer " + key) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError::unauthorized(auth.empty() ? "no API key: send 'Authorization: Bearer KEY'"
                                                        : "the API key is not valid"));
    counters_.count(req.path, 401);
    return httplib::Server::HandlerResponse::Handled;
  });
  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Statuses httplib sets itself (body too large, no such path or method); handlers fill theirs.
    if (!res.body.empty()) return;
    if (res.status == 413)
      send_error(res, ApiError::too_large("the request body is larger than " + std::to_string(opts_.max_body_bytes) +
                                          " bytes"));
    else if (res.status == 404)
      send_error(res, ApiError::not_found("", "no endpoint " + req.method + " " + req.path));
    else if (res.status == 405)
      send_error(res, ApiError{405, "method " + req.method + " is not allowed on " + req.path, "invalid_request_error", "", ""});
    else
      send_error(res, ApiError{res.status, "HTTP " + std::to_string(res.status), "invalid_request_error", "", ""});
    counters_.count(req.path, res.status);
  });

  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const EngineStats st = engine_.stats();
    res.set_content(json_text({{"status", "ok"},
                               {"slots_idle", st.parallel - st.active},
                               {"slots_processing", st.active},
                               {"queue", st.queued}}),
                    "application/json");
    counters_.count("/health", 200);
  });
  s.Get("/", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(reinterpret_cast<const char*>(kWebChatPage), kWebChatPage_size, "text/html; charset=utf-8");
    counters_.count("/", 200);
  });
  s.Get("/props", [this](const httplib::Request&, httplib::Response& res) {
    // What the web chat needs to draw the router view (llama.cpp's server has a /props too).
    std::vector<int> moe_layers;
    for (int l = 0; l < config_.num_layers; ++l)
      if (config_.layer_is_moe(l)) moe_layers.push_back(l);
    std::vector<std::string> names = config_.expert_names;
    for (int e = int(names.size()); e < config_.num_experts; ++e) names.push_back("expert " + std::to_string(e));
    res.set_content(json_text({{"model", opts_.model_id},
                               {"architecture", bundle_.summary.architecture},
                               {"experts", config_.num_experts},
                               {"top_k", config_.top_k},
                               {"expert_names", names},
                               {"moe_layers", moe_layers},
                               {"context", engine_.options().context},
                               {"parallel", engine_.options().parallel}}),
                    "application/json");
    counters_.count("/props", 200);
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(json_text(models_json({opts_.model_id}, int64_t(started_))), "application/json");
    counters_.count("/v1/models", 200);
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    MetricsInput in;
    in.engine = engine_.stats();
    in.requests = counters_.snapshot();
    in.expert_names = config_.expert_names;
    in.uptime_seconds = double(std::time(nullptr)) - started_;
    if (const Transformer* t = bundle_.model->cpu_transformer())
      if (const PackedCopies* c = t->expert_copies(); c && config_.is_moe())
        in.expert_copies = ExpertCopiesStats{c->copies_made(), c->copies_dropped(), c->resident_bytes(),
                                             c->budget_bytes()};
    res.set_content(prometheus_metrics(in), "text/plain; version=0.0.4");
    counters_.count("/metrics", 200);
  });

  for (const bool chat : {true, false}) {
    const std::string path = chat ? "/v1/chat/completions" : "/v1/completions";
    s.Post(path, [this, chat, path](const httplib::Request& req, httplib::Response& res) {
      auto job = std::make_shared<Job>();
      try {
        nlohmann::json body;
        try {
          body = nlohmann::json::parse(req.body);
        } catch (const nlohmann::json::exception& e) {
          throw ApiError::invalid("", std::string("the request body is not valid JSON: ") + e.what());
        }
        job->request = chat ? parse_chat_request(body) : parse_completion_request(body);
        const CompletionRequest& cr = job->request;
        if (!cr.model.empty() && cr.model != opts_.model_id)
          throw ApiError::not_found("model", "the model '" + cr.model + "' does not exist; this server serves '" +
                                                 opts_.model_id + "'",
                                    "model_not_found");
        const Tokenizer& tok = *bundle_.tokenizer;
        std::vector<int32_t> prompt = chat ? tok.encode(bundle_.chat_template->render(cr.messages, true), true)
                                           : encode_for_model(tok, cr.prompt);
        if (prompt.empty()) throw ApiError::invalid(chat ? "messages" : "prompt", "the prompt is empty");
        const int context = engine_.options().context;
        if (int(prompt.size()) >= context)
          throw ApiError::invalid(chat ? "messages" : "prompt",
                                  "the prompt is " + std::to_string(prompt.size()) + " tokens; this server's context holds " +
                                      std::to_string(context) + " tokens per request (prompt and completion)",
                                  "context_length_exceeded");
        SequenceRequest sr;
        sr.prompt = std::move(prompt);
        const int room = context - int(sr.prompt.size());
        sr.max_tokens = cr.max_tokens > 0 ? std::min(cr.max_tokens, room) : room;
        sr.sampling = cr.sampling;
        sr.frequency_penalty = cr.frequency_penalty;
        sr.presence_penalty = cr.presence_penalty;
        sr.stop = cr.stop;
        sr.eos_ids = bundle_.eos_ids;
        sr.top_logprobs = cr.logprobs ? cr.top_logprobs : -1;
        sr.routes = cr.routes && config_.is_moe();
        job->channel = std::make_shared<Channel>();
        try {
          job->ticket = engine_.submit(std::move(sr), sink_into(job->channel));
        } catch (const QueueFull& e) {
          throw ApiError::overloaded(std::string("the server is busy: ") + e.what() + "; retry shortly");
        } catch (const Error& e) {
          throw ApiError::invalid("", e.what());
        }
        char id[32];
        std::snprintf(id, sizeof id, "%s-%016llx", chat ? "chatcmpl" : "cmpl",
                      (unsigned long long)next_id_.fetch_add(1));
        job->id = id;
        job->model = opts_.model_id;
        job->created = int64_t(std::time(nullptr));
      } catch (const ApiError& e) {
        send_error(res, e);
        counters_.count(path, e.status);
        return;
      }
      counters_.count(path, 200);
      answer(job, chat, res, *bundle_.tokenizer, config_.expert_names, opts_.timeout_seconds);
    });
  }
}

}  // namespace mf
