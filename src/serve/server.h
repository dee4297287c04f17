// moeforge serve: the OpenAI-compatible HTTP API (cpp-httplib) in front of a BatchEngine.
//   POST /v1/chat/completions, POST /v1/completions (streamed as Server-Sent Events or not),
//   GET /v1/models, GET /health, GET /metrics (Prometheus text).
// Errors are OpenAI's error object with its status code (400 naming the field, 401, 404, 413,
// 503 with Retry-After when the queue is full). Endpoints and flags: docs/serve.md.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include "infer/bundle.h"
#include "serve/batch_engine.h"
#include "serve/metrics.h"

namespace httplib {
class Server;
}

namespace mf {

// How long a kept-alive connection may wait for its next request (docs/serve.md).
inline constexpr int kKeepAliveIdleSeconds = 15;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0: any free port (bound_port() tells which)
  std::string api_key;                 // empty: no authentication
  size_t max_body_bytes = size_t(8) << 20;
  int timeout_seconds = 600;           // longest a request may run; then it is cancelled
  int http_threads = 0;                // 0: parallel + max_queue + 8 (every waiting client holds one)
  std::string model_id;                // the name /v1/models lists and requests must use
};

class Server {
 public:
  // The bundle (tokenizer, chat template, EOS ids, model config) and engine must outlive it.
  Server(const ModelBundle& bundle, const ModelConfig& config, BatchEngine& engine, ServerOptions opts);
  ~Server();

  // Binds (throws mf::Error naming host:port when it cannot); then listen() serves until stop().
  void bind();
  int bound_port() const { return port_; }
  void listen();
  // Stops accepting connections and closes idle kept-alive ones; responses being written finish
  // (call engine.drain() before, so that every request in flight has its answer).
  void stop();

 private:
  void routes();

  const ModelBundle& bundle_;
  const ModelConfig& config_;
  BatchEngine& engine_;
  ServerOptions opts_;
  std::unique_ptr<httplib::Server> http_;
  RequestCounters counters_;
  std::atomic<uint64_t> next_id_{1};
  int port_ = 0;
  double started_ = 0;
};

}  // namespace mf
