// moeforge serve -m MODEL: the OpenAI-compatible server with continuous batching (src/serve).
// SIGINT / SIGTERM stop admitting requests, let the ones in flight finish, then exit 0.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>


#include "commands.h"
#include "common.h"
#include "core/timer.h"
#include "model/transformer.h"
#include "serve/batch_engine.h"
#include "serve/server.h"

namespace mf::cli {

namespace {

// The name /v1/models lists: the model directory's or file's name, never a local path.
std::string model_id_for(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  if (ec) p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  const std::string name = fs::is_directory(p, ec) ? p.filename().string() : p.stem().string();
  return name.empty() ? "moeforge" : name;
}

}  // namespace

int run_serve(const std::vector<std::string>& args) {
  std::string model, host = "127.0.0.1", api_key, alias;
  int port = 8080, parallel = 4, ctx = 2048, threads = 0, max_queue = 64, timeout = 600, prefill_chunk = 256;
  int max_body = 8 << 20, expert_cache_mib = 0;
  bool int8 = false;
  std::string cache_type_k = "f32", cache_type_v = "f32";
  ArgParser p("moeforge serve -m MODEL [--host 127.0.0.1] [--port 8080] [--parallel N] [options]",
              "Serves the model over HTTP with the OpenAI API (POST /v1/chat/completions, /v1/completions, GET "
              "/v1/models, /health, /metrics), decoding up to --parallel requests together (continuous batching). "
              "Endpoints, fields and metrics: docs/serve.md. Ctrl-C finishes the requests in flight, then exits.");
  p.option("model", 'm', "PATH", "HF model directory or .gguf file (dense or MoE)", &model, true);
  p.option("host", 0, "ADDR", "address to listen on (default 127.0.0.1: this machine only)", &host);
  p.option("port", "N", "port (default 8080; 0: any free port, printed at start)", &port);
  p.option("parallel", "N", "requests decoded together, each with its own KV-cache slot (default 4)", &parallel);
  p.alias("-np", "parallel");
  p.option("ctx", 'c', "N", "context per request in tokens, prompt and completion (default 2048)", &ctx);
  p.alias("--ctx-size", "ctx");
  p.option("threads", 't', "N", "CPU threads, 0 = all (default 0)", &threads);
  p.option("api-key", 0, "KEY", "require 'Authorization: Bearer KEY' on every endpoint but / (the web page) and /health", &api_key);
  p.option("max-queue", "N", "requests that may wait for a slot; more get 503 with Retry-After (default 64)",
           &max_queue);
  p.option("timeout", "S", "longest a request may run, in seconds (default 600)", &timeout);
  p.option("prefill-chunk", "N", "prompt tokens computed per engine step, so long prompts do not stall "
           "others (default 256)", &prefill_chunk);
  p.option("max-body", "BYTES", "largest request body; larger ones get 413 (default 8 MiB)", &max_body);
  p.option("alias", 0, "NAME", "the model name clients use (default: the model's directory or file name)", &alias);
  p.flag("int8", "decode Q4_0/Q4_1/Q8_0 weights with int8 activations (faster, logits move by a few percent)", &int8);
  add_kv_cache_flags(p, cache_type_k, cache_type_v);
  add_expert_cache_flag(p, expert_cache_mib);
  p.example("moeforge serve -m ~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf --parallel 4", "serve the OpenAI API and the web chat on http://127.0.0.1:8080");
  p.example("moeforge serve -m runs/smolmoe/routers/model --host 0.0.0.0 --api-key KEY", "on every address, with a key (docs/serve.md)");
  if (!parse_or_usage(p, args)) return 0;
  if (port < 0 || port > 65535) throw UsageError(cat("--port must be in [0, 65535], got ", port));
  if (parallel < 1 || parallel > 256) throw UsageError(cat("--parallel must be in [1, 256], got ", parallel));
  if (ctx < 2) throw UsageError(cat("--ctx must be >= 2, got ", ctx));
  if (threads < 0) throw UsageError(cat("--threads must be >= 0, got ", threads));
  if (max_queue < 0) throw UsageError(cat("--max-queue must be >= 0, got ", max_queue));
  if (timeout < 1) throw UsageError(cat("--timeout must be >= 1, got ", timeout));
  if (prefill_chunk < 1) throw UsageError(cat("--prefill-chunk must be >= 1, got ", prefill_chunk));
  const KVCacheTypes kv_cache = kv_cache_types(cache_type_k, cache_type_v);
  if (max_body < 1024) throw UsageError(cat("--max-body must be >= 1024, got ", max_body));

  // Signals go to one waiting thread, never to a handler running inside the engine or HTTP code.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Timer timer;
  LoadOptions lo;
  lo.max_context = 1;  // the bundle's own one-sequence cache is unused: the engine has its own
  lo.threads = threads;
  lo.int8_decode = int8;
  lo.expert_cache_bytes = expert_cache_bytes(expert_cache_mib);
  ModelBundle bundle = load_model_bundle(model, lo);
  Transformer* transformer = bundle.model->cpu_transformer();
  if (!transformer) throw UsageError("serve runs on the CPU model only");
  const ModelConfig& config = transformer->config();
  const int model_ctx = config.max_position_embeddings > 0 ? config.max_position_embeddings : ctx;
  if (ctx > model_ctx) {
    std::fprintf(stderr, "note: --ctx %d is more than the model's %d positions; using %d\n", ctx, model_ctx, model_ctx);
    ctx = model_ctx;
  }
  EngineOptions eo;
  eo.parallel = parallel;
  eo.context = ctx;
  eo.prefill_chunk = prefill_chunk;
  eo.max_queue = max_queue;
  eo.kv_cache = kv_cache;
  BatchEngine engine(*transformer, *bundle.tokenizer, eo);
  ServerOptions so;
  so.host = host;
  so.port = port;
  so.api_key = api_key;
  so.max_body_bytes = size_t(max_body);
  so.timeout_seconds = timeout;
  so.model_id = alias.empty() ? model_id_for(model) : alias;
  Server server(bundle, config, engine, so);
  server.bind();
  std::fprintf(stderr, "moeforge serve: %s (%s%s) loaded in %.1f s; %d slots x %d tokens; listening on http://%s:%d\n",
               so.model_id.c_str(), bundle.summary.architecture.c_str(),
               config.is_moe() ? (", " + std::to_string(config.num_experts) + " experts").c_str() : "",
               timer.seconds(), parallel, ctx, host.c_str(), server.bound_port());
  std::printf("%d\n", server.bound_port());
  std::fflush(stdout);

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "moeforge serve: %s, finishing the requests in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    engine.drain();
    server.stop();
  });
  server.listen();
  // listen() also returns if the server stopped for another reason: wake the stopper then.
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  std::fprintf(stderr, "moeforge serve: stopped\n");
  return 0;
}

}  // namespace mf::cli
