#include "train/recipe.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>


#include "core/error.h"
#include "io/yaml_config.h"

namespace mf {

namespace fs = std::filesystem;

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  const nlohmann::json j = load_yaml_file(path, overrides);
  Recipe r;
  r.path = path;
  const std::string base = fs::path(path).parent_path().string();
  ConfigReader top(j, "", path);

  const ConfigReader model = top.sub("model");
  model.get("init", r.init);
  model.get("seed", r.init_seed);
  model.get("init_std", r.init_std);
  MF_CHECK(r.init_std > 0, path, ": 'model.init_std' = ", r.init_std, " must be > 0");
  r.config = model.raw("config");
  MF_CHECK(r.config.is_null() || r.config.is_object(), path, ": 'model.config' must be a mapping of config.json keys");
  if (r.init != "scratch") {
    const std::string written = r.init;
    r.init = resolve_recipe_path(base, r.init);
    std::error_code ec;  // a path the system cannot even look up (too long, say) is not there either
    MF_CHECK(fs::exists(r.init, ec), path, ": 'model.init' = '", written, "': no such model (", r.init,
             "); use scratch, or a model directory or .gguf");
  }
  model.finish();

  top.get("tokenizer", r.tokenizer);
  if (r.tokenizer != "char" && r.tokenizer != "model") {
    const std::string written = r.tokenizer;
    r.tokenizer = resolve_recipe_path(base, r.tokenizer);
    std::error_code ec;
    MF_CHECK(fs::exists(r.tokenizer, ec), path, ": 'tokenizer' = '", written, "': no such file (", r.tokenizer,
             "); use char, model, or a tokenizer.json or model path");
  }

  const ConfigReader data = top.sub("data");
  auto files = [&](const char* key, std::vector<std::string>& out) {
    const nlohmann::json v = data.raw(key);
    if (v.is_string()) out.push_back(v.get<std::string>());
    else if (v.is_array())
      for (const auto& f : v) {
        MF_CHECK(f.is_string(), path, ": 'data.", key, "' must name a file or a list of files");
        out.push_back(f.get<std::string>());
      }
    else MF_CHECK(v.is_null(), path, ": 'data.", key, "' must name a file or a list of files");
    for (auto& f : out) f = resolve_recipe_path(base, f);
  };
  files("train", r.train_files);
  MF_CHECK(!r.train_files.empty(), path, ": 'data.train' must name a file or a list of files");
  files("valid", r.valid_files);
  data.get("format", r.data_format);
  MF_CHECK(r.data_format == "auto" || r.data_format == "text" || r.data_format == "sft", path,
           ": 'data.format' must be auto, text or sft, got '", r.data_format, "'");
  data.get("valid_fraction", r.valid_fraction);
  MF_CHECK(r.valid_fraction >= 0 && r.valid_fraction < 1, path, ": 'data.valid_fraction' = ", r.valid_fraction,
           " must be in [0, 1)");
  data.get("domains", r.domains);
  data.get("skip_bad", r.skip_bad);
  data.get("loss_on", r.loss_on);
  MF_CHECK(r.loss_on == "all_assistant" || r.loss_on == "last_assistant", path,
           ": 'data.loss_on' must be all_assistant or last_assistant, got '", r.loss_on, "'");
  data.get("sampling", r.sampling);
  MF_CHECK(r.sampling == "mix" || r.sampling == "balanced", path, ": 'data.sampling' must be mix or balanced, got '",
           r.sampling, "'");
  const nlohmann::json weights = data.raw("domain_weights");
  MF_CHECK(weights.is_null() || weights.is_object(), path,
           ": 'data.domain_weights' must be a mapping of domain name to weight");
  for (const auto& [name, w] : weights.items()) {
    MF_CHECK(w.is_number() && std::isfinite(w.get<double>()) && w.get<double>() >= 0, path, ": 'data.domain_weights.",
             name, "' must be a number >= 0");
    r.domain_weights[name] = w.get<double>();
  }
  MF_CHECK(r.domain_weights.empty() || r.sampling == "balanced", path,
           ": 'data.domain_weights' weighs the balanced sampler; set data.sampling: balanced");
  data.finish();

  top.get("freeze", r.freeze);

  TrainerConfig& t = r.trainer;
  const ConfigReader tr = top.sub("train");
  tr.get("steps", t.steps);
  tr.get("batch", t.batch);
  tr.get("seq_len", t.seq_len);
  tr.get("grad_accum", t.grad_accum);
  tr.get("lr", t.lr);
  tr.get("moe_lr_scale", t.moe_lr_scale);
  tr.get("min_lr_ratio", t.min_lr_ratio);
  tr.get("warmup", t.warmup);
  tr.get("weight_decay", t.weight_decay);
  tr.get("beta1", t.beta1);
  tr.get("beta2", t.beta2);
  tr.get("eps", t.eps);
  tr.get("clip", t.clip);
  tr.get("lb_coef", t.lb_coef);
  tr.get("z_coef", t.z_coef);
  std::string lb_scope = "batch";
  tr.get("lb_scope", lb_scope);
  MF_CHECK(lb_scope == "batch" || lb_scope == "sequence", path, ": 'train.lb_scope' must be batch or sequence, got '",
           lb_scope, "'");
  t.lb_per_sequence = lb_scope == "sequence";
  tr.get("recompute", t.recompute);
  tr.get("balance_bias_rate", t.balance_bias_rate);
  tr.get("router_domain_coef", t.router_domain_coef);
  MF_CHECK(std::isfinite(t.router_domain_coef) && t.router_domain_coef >= 0, path,
           ": 'train.router_domain_coef' must be >= 0");
  std::string domain_scope = "record";
  tr.get("router_domain_scope", domain_scope);
  MF_CHECK(domain_scope == "record" || domain_scope == "token", path,
           ": 'train.router_domain_scope' must be record or token, got '", domain_scope, "'");
  t.router_domain_per_token = domain_scope == "token";
  MF_CHECK(t.balance_bias_rate >= 0, path, ": 'train.balance_bias_rate' must be >= 0");
  tr.get("eval_every", t.eval_every);
  tr.get("eval_windows", t.eval_windows);
  tr.get("checkpoint_every", t.checkpoint_every);
  tr.get("seed", t.seed);
  tr.get("max_minutes", t.max_minutes);
  // Validated where read, naming the key: a bad value must not fail later under another name.
  auto require = [&](bool ok, const char* key, const auto& value, const char* rule) {
    MF_CHECK(ok, path, ": 'train.", key, "' = ", value, " must be ", rule);
  };
  require(t.steps >= 1, "steps", t.steps, ">= 1");
  require(t.batch >= 1, "batch", t.batch, ">= 1");
  require(t.seq_len >= 1, "seq_len", t.seq_len, ">= 1");
  require(t.grad_accum >= 1, "grad_accum", t.grad_accum, ">= 1");
  require(t.lr > 0, "lr", t.lr, "> 0");
  require(t.moe_lr_scale >= 0, "moe_lr_scale", t.moe_lr_scale, ">= 0");
  require(t.min_lr_ratio >= 0 && t.min_lr_ratio <= 1, "min_lr_ratio", t.min_lr_ratio, "in [0, 1]");
  require(t.warmup >= 0, "warmup", t.warmup, ">= 0");
  require(t.weight_decay >= 0, "weight_decay", t.weight_decay, ">= 0");
  require(t.beta1 >= 0 && t.beta1 < 1, "beta1", t.beta1, "in [0, 1)");
  require(t.beta2 >= 0 && t.beta2 < 1, "beta2", t.beta2, "in [0, 1)");
  require(t.eps > 0, "eps", t.eps, "> 0");
  require(t.clip >= 0, "clip", t.clip, ">= 0 (0: no clipping)");
  require(t.lb_coef >= 0, "lb_coef", t.lb_coef, ">= 0");
  require(t.z_coef >= 0, "z_coef", t.z_coef, ">= 0");
  require(t.eval_every >= 0, "eval_every", t.eval_every, ">= 0");
  require(t.eval_windows >= 0, "eval_windows", t.eval_windows, ">= 0 (0: all)");
  require(t.checkpoint_every >= 0, "checkpoint_every", t.checkpoint_every, ">= 0");
  require(t.max_minutes >= 0, "max_minutes", t.max_minutes, ">= 0");
  tr.finish();

  // dist: how a data-parallel job (mpirun -np N moeforge train) trains; no effect in one process
  // (where expert_parallel must be 1: apps/moeforge/cmd_train).
  const ConfigReader dist = top.sub("dist");
  dist.get("shard_optimizer", t.shard_optimizer);
  dist.get("expert_parallel", t.expert_parallel);
  MF_CHECK(t.expert_parallel >= 1, path, ": 'dist.expert_parallel' = ", t.expert_parallel,
           " must be >= 1 (ranks per expert-parallel group; 1: every rank runs every expert)");
  dist.finish();

  top.get("output", t.out_dir);
  MF_CHECK(!t.out_dir.empty(), path, ": 'output' (the run directory) is required");

  const ConfigReader sample = top.sub("sample");
  sample.get("prompt", r.sample_prompt);
  sample.get("max_tokens", r.sample_tokens);
  sample.get("temperature", r.sample_temperature);
  MF_CHECK(r.sample_tokens >= 0 && r.sample_temperature >= 0, path,
           ": 'sample.max_tokens' and 'sample.temperature' must be >= 0");
  sample.finish();

  top.finish();
  return r;
}

}  // namespace mf
