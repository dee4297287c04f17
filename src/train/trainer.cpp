// Trainer::run and its checkpoints: one safetensors file holding every trainable tensor with its
// AdamW moments, the model's buffers and, as metadata, the step, optimizer steps and data position:
// all a resumed run needs to continue the same loss curve. The metrics log is cut back to match.
#include "train/trainer.h"
#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/timer.h"
#include "io/safetensors.h"
#include "model/config_json.h"
#include "model/moe_ffn.h"
#include "model/save.h"
#include "model/tensor_names.h"
#include "moe/router_noise.h"
#include "train/domain_routing.h"
#include "train/freeze.h"
#include "train/schedule.h"
#include "train/expert_parallel_optimizer.h"
#include "train/sharded_adamw.h"

namespace mf {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCheckpointFormat = "moeforge-checkpoint-1";

void write_text_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}


}  // namespace

Trainer::Trainer(TrainableTransformer& model, TrainingData& data, TrainerConfig config)
    : Trainer(std::make_unique<CpuTrainableModel>(model), data, std::move(config)) {}

Trainer::Trainer(std::unique_ptr<TrainableModel> owned, TrainingData& data, TrainerConfig config)
    : owned_model_(std::move(owned)), model_(*owned_model_), data_(data), cfg_(std::move(config)) {
  make_optimizer();
}

Trainer::Trainer(TrainableModel& model, TrainingData& data, TrainerConfig config)
    : model_(model), data_(data), cfg_(std::move(config)) {
  make_optimizer();
}

void Trainer::make_optimizer() {
  MF_CHECK(cfg_.steps > 0 && cfg_.batch > 0 && cfg_.grad_accum > 0 && cfg_.lr > 0, "trainer: steps, batch, ",
           "grad_accum and lr must be positive");
  MF_CHECK(!cfg_.out_dir.empty(), "trainer: an output directory is required");
  MF_CHECK(data_.eval_batches() > 0, "trainer: no validation batches");
  MF_CHECK(cfg_.moe_lr_scale >= 0, "trainer: moe_lr_scale must be >= 0, got ", cfg_.moe_lr_scale);
  MF_CHECK(!model_.trainable_names().empty(), "trainer: every tensor is frozen; nothing to train");
  // Only top-1 routers train: their gate is p/p = 1 whatever the logits, so without an aux loss
  // the run would leave every weight where it is (on any device).
  const std::vector<std::string> trainable = model_.trainable_names();
  const bool only_top1_routers = router_gates_are_constant(model_.config()) &&
                                 std::all_of(trainable.begin(), trainable.end(), is_router_name);
  MF_CHECK(!only_top1_routers || cfg_.lb_coef > 0 || cfg_.z_coef > 0 || cfg_.router_domain_coef > 0,
           "train: only the routers train and the model routes top-1 with renormalised gates (always 1), so the LM "
           "loss gives them no gradient; set train.router_domain_coef (supervision from the records' domains), "
           "train.lb_coef or train.z_coef, or fuse with top_k: 2");
  opt_ = model_.make_optimizer(optimizer_spec());
  dp_ = std::make_unique<DataParallel>(one_process_, model_, cfg_.grad_accum);
  MF_CHECK(cfg_.router_domain_coef >= 0, "trainer: router_domain_coef must be >= 0");
  if (cfg_.router_domain_coef > 0) {
    MF_CHECK(!data_.domain_names().empty(), "train.router_domain_coef needs instruction data whose records carry "
             "their domain (data.format: sft)");
    domain_expert_ = domain_experts(data_.domain_names(), model_.config());
  }
}

OptimizerSpec Trainer::optimizer_spec() const {
  // Four groups: {non-MoE, MoE (routers and experts)} x {decayed matrices, norms/biases}.
  const float moe_lr = cfg_.lr * cfg_.moe_lr_scale;
  OptimizerSpec spec;
  spec.groups = {{"decay", cfg_.lr, cfg_.weight_decay},
                 {"no_decay", cfg_.lr, 0.0f},
                 {"moe_decay", moe_lr, cfg_.weight_decay},
                 {"moe_no_decay", moe_lr, 0.0f}};
  spec.group_of = [](const std::string& name, const Shape& shape) {
    const bool moe = freeze_pattern_matches("experts", name) || freeze_pattern_matches("router", name);
    return (moe ? 2 : 0) + (default_no_decay(name, shape) ? 1 : 0);
  };
  spec.betas = AdamW::Betas{cfg_.beta1, cfg_.beta2, cfg_.eps};
  return spec;
}

void Trainer::set_communicator(Communicator& comm, ExpertGroups* experts) {
  // ZeRO-1 only means something with several ranks; alone the optimizer stays whole.
  const bool shard = cfg_.shard_optimizer && comm.size() > 1;
  dp_ = std::make_unique<DataParallel>(comm, model_, cfg_.grad_accum,
                                       shard ? GradientReduction::kReduceScatter : GradientReduction::kAllReduce,
                                       experts);
  if (experts) {
    // This rank's state (replicated tensors, its experts), as one optimizer of the whole model.
    std::unique_ptr<Optimizer> inner =
        shard ? make_sharded_adamw(comm, {{&comm, &dp_->buckets()}, {&experts->expert_replicas(), dp_->expert_buckets()}},
                                   model_, optimizer_spec())
              : model_.make_optimizer(optimizer_spec());
    opt_ = make_expert_parallel_optimizer(std::move(inner), shard, *experts, model_);
  } else if (shard) {
    opt_ = make_sharded_adamw(comm, dp_->buckets(), model_, optimizer_spec());
  }
}

double Trainer::evaluate() {
  // Each rank scores its share of the batches; the sums are added in batch order on every rank.
  // With expert parallelism a rank without a batch in a round still runs its experts for the
  // ranks of its group that have one.
  std::vector<TrainingLoss> per_batch(data_.eval_batches());
  Batch b;
  for (size_t i = 0; i < per_batch.size(); ++i) {
    if (!dp_->owns_eval_batch(i)) continue;
    data_.eval_batch(i, b);
    per_batch[i] = model_.evaluate(b.tokens, b.targets, b.rows);
  }
  // The last round: rank r's batch would be past the end.
  const size_t ranks = size_t(dp_->comm().size()), mine = per_batch.size() / ranks * ranks + size_t(dp_->comm().rank());
  if (dp_->serves_experts_for(mine, per_batch.size())) model_.serve_experts();
  dp_->sum_losses(per_batch);
  double sum = 0;
  int64_t count = 0;
  for (const TrainingLoss& l : per_batch) {
    sum += l.lm_sum;
    count += l.lm_tokens;
  }
  return count ? sum / double(count) : 0.0;
}

namespace {

// Per MoE layer: tokens per expert, load coefficient of variation, router entropy, drop rate,
// share of capacity used (when capacity is limited), z-loss.
void add_routing_stats(const std::vector<RoutingTally>& tallies, nlohmann::json& rec) {
  if (tallies.empty()) return;
  std::vector<std::vector<int64_t>> load;
  std::vector<double> cv, entropy, drop, used, z;
  bool limited = false;
  for (const RoutingTally& t : tallies) {
    load.push_back(t.load);
    cv.push_back(t.load_cv());
    entropy.push_back(t.entropy());
    drop.push_back(t.drop_rate());
    used.push_back(t.capacity_used());
    z.push_back(t.z());
    limited |= t.capacity_slots > 0;
  }
  rec["expert_load"] = load;
  rec["load_cv"] = cv;
  rec["router_entropy"] = entropy;
  rec["router_z"] = z;
  if (limited) {
    rec["drop_rate"] = drop;
    rec["capacity_used"] = used;
  }
}

}  // namespace

void Trainer::save_checkpoint(int64_t step) {
  // The file is streamed from the optimizer's own buffers, never copied: a first visit declares
  // every tensor (the header leads the file), a second writes them in the same order. Every rank
  // visits both times (a sharded or expert-parallel optimizer gathers its state on each visit, a
  // collective); rank 0 writes.
  const bool root = dp_->is_root();
  std::vector<SafetensorsEntry> entries;
  opt_->visit_state([&](const std::string& name, std::span<float> value, std::span<float>, std::span<float>) {
    if (!root) return;
    const Shape shape{int64_t(value.size())};
    for (const char* part : {"param/", "adam_m/", "adam_v/"}) entries.push_back({part + name, DType::F32, shape});
  });
  if (root)
    for (const auto& [name, values] : model_.buffers())
      entries.push_back({"buffer/" + name, DType::F32, {int64_t(values.size())}});
  const std::map<std::string, std::string> meta = {
      {"format", kCheckpointFormat},
      {"step", std::to_string(step)},
      {"optimizer_steps", std::to_string(opt_->steps_taken())},
      {"data_state", data_.state()},
      {"config", config_to_hf_json(model_.config()).dump()}};
  std::optional<SafetensorsStreamWriter> file;
  if (root) {
    fs::create_directories(cfg_.out_dir);
    // Atomic: a crash while writing leaves the previous checkpoint.
    file.emplace((fs::path(cfg_.out_dir) / "checkpoint.safetensors").string(), std::move(entries), meta);
  }
  auto write = [&](const std::string& name, std::span<const float> values, size_t expected) {
    MF_CHECK(values.size() == expected, "checkpoint: '", name, "' has ", values.size(), " values, its weights ",
             expected);
    file->write(name, values.data(), values.size() * sizeof(float));
  };
  opt_->visit_state([&](const std::string& name, std::span<float> value, std::span<float> m, std::span<float> v) {
    if (!root) return;
    write("param/" + name, value, value.size());
    write("adam_m/" + name, m, value.size());
    write("adam_v/" + name, v, value.size());
  });
  if (!root) return;
  for (const auto& [name, values] : model_.buffers()) write("buffer/" + name, values, values.size());
  file->commit();
}

int64_t Trainer::load_checkpoint() {
  // Rank 0 reads the file; every value it reads is broadcast to the other ranks (a no-op alone),
  // so only rank 0 needs the checkpoint.
  const bool root = dp_->is_root();
  Communicator& comm = dp_->comm();
  const std::string path = (fs::path(cfg_.out_dir) / "checkpoint.safetensors").string();
  std::optional<SafetensorsFile> file;
  if (root) {
    MF_CHECK(fs::exists(path), "resume: no checkpoint at ", path);
    file = SafetensorsFile::open(path);
  }
  auto meta = [&](const char* key) -> std::string {
    std::string value;
    if (root) {
      auto it = file->metadata.find(key);
      MF_CHECK(it != file->metadata.end(), path, ": checkpoint metadata has no '", key, "'");
      value = it->second;
    }
    broadcast_string(comm, value, 0);
    return value;
  };
  MF_CHECK(meta("format") == kCheckpointFormat, path, ": not a ", kCheckpointFormat, " file");
  auto copy = [&](const std::string& key, std::span<float> dst, const char* hint) {
    if (root) {
      auto it = file->tensors.find(key);
      MF_CHECK(it != file->tensors.end(), path, ": checkpoint has no '", key, "'", hint);
      MF_CHECK(it->second.dtype() == DType::F32 && size_t(it->second.numel()) == dst.size(), path, ": '", key,
               "' has ", it->second.numel(), " values, the model needs ", dst.size());
      std::copy_n(it->second.data<float>(), dst.size(), dst.begin());
    }
    broadcast_floats(comm, dst, 0);
  };
  opt_->restore_state([&](const std::string& name, std::span<float> value, std::span<float> m, std::span<float> v) {
    const char* hint = " (was it saved with another freeze list?)";
    copy("param/" + name, value, hint);
    copy("adam_m/" + name, m, hint);
    copy("adam_v/" + name, v, hint);
  });
  for (const auto& [name, values] : model_.buffers()) copy("buffer/" + name, values, "");
  model_.buffers_written();
  opt_->set_steps_taken(std::stoll(meta("optimizer_steps")));
  data_.set_state(meta("data_state"));
  return std::stoll(meta("step"));
}

void Trainer::export_model(const std::string& dir) {
  if (!dp_->expert_parallel()) {
    save_model_weights(model_.weights(), dir);
    if (export_hook_) export_hook_(dir);
    return;
  }
  // Rank 0 receives the trained experts it does not hold from their holders (every rank takes
  // part).
  const ModelWeights weights = expert_parallel_weights_on_root(*dp_->expert_groups(), model_);
  if (!dp_->is_root()) return;
  save_model_weights(weights, dir);
  if (export_hook_) export_hook_(dir);
}

void Trainer::set_export_hook(std::function<void(const std::string& dir)> hook) { export_hook_ = std::move(hook); }

namespace {

// Temporary files of atomic writes (core/mapped_file: NAME.tmp.PID) that a killed process left in
// the run directory; nothing else in it ends that way.
void remove_stale_temporaries(const fs::path& dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t tmp = name.rfind(".tmp.");
    if (tmp == std::string::npos || tmp + 5 == name.size() || !it->is_regular_file()) continue;
    if (name.find_first_not_of("0123456789", tmp + 5) != std::string::npos) continue;
    std::error_code rm;
    fs::remove(it->path(), rm);
  }
}

}  // namespace

void Trainer::prepare_run_dir(int64_t step, const std::string& metrics_path, TrainResult& result) {
  if (cfg_.resume) {
    // Keep the log up to the checkpoint so the resumed curve continues it without duplicates.
    // A process killed mid-write may have left a line cut short: it is dropped, not fatal.
    std::ifstream in(metrics_path);
    std::string kept, line;
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object()) continue;
      const auto s = j.find("step");
      if ((s == j.end() || !s->is_number_integer() || s->get<int64_t>() <= step)) kept += line + "\n";
    }
    write_text_atomic(metrics_path, kept);
  } else {
    write_text_atomic(metrics_path, "");
  }
  const fs::path best_state = fs::path(cfg_.out_dir) / "best" / "trainer_state.json";
  if (cfg_.resume && fs::exists(best_state)) {
    // The best model so far is part of the run's state: a resumed run keeps competing with it.
    const auto j = read_json_file(best_state.string());
    if (j.value("step", int64_t(0)) <= step) {
      result.best_step = j.value("step", int64_t(0));
      result.best_valid_loss = j.value("valid_loss", 0.0);
    }
  }
}

Trainer::StepResult Trainer::optimizer_step(int64_t step, std::vector<Batch>& micro, const WarmupCosine& schedule) {
  model_.zero_grad();
  StepResult r;
  // The step's loss is the mean over every scored token of its micro-batches, so the
  // micro-batches are drawn first: instruction batches score different numbers of tokens.
  int64_t scored = 0;
  for (Batch& b : micro) {
    data_.next(b);
    scored += std::count_if(b.targets.begin(), b.targets.end(), [](int32_t t) { return t >= 0; });
    r.tokens += b.real_tokens;
  }
  StepOptions opts;
  opts.lb_coef = cfg_.lb_coef / float(cfg_.grad_accum);
  opts.z_coef = cfg_.z_coef / float(cfg_.grad_accum);
  opts.lb_per_sequence = cfg_.lb_per_sequence;
  opts.recompute = cfg_.recompute;
  opts.domain_coef = cfg_.router_domain_coef / float(cfg_.grad_accum);
  opts.domain_per_token = cfg_.router_domain_per_token;
  opts.loss_tokens = std::max<int64_t>(scored, 1);
  model_.reset_routing_stats();
  if (ExpertGroup* group = model_.expert_group()) group->stats() = {};
  // Data parallel: this rank runs its own micro-batches; the last one's backward starts sending
  // the gradients, and finish_step gives every rank the sums (one process: runs all, sends nothing).
  std::vector<TrainingLoss> micro_losses(micro.size());
  dp_->begin_step();
  for (size_t mi = 0; mi < micro.size(); ++mi) {
    if (!dp_->owns_micro_batch(mi)) continue;
    const Batch& b = micro[mi];
    opts.noise_seed = router_noise_step_seed(cfg_.seed, step, mi);
    opts.on_grads_done = mi == dp_->last_micro_batch() ? dp_->grads_done() : nullptr;
    if (!domain_expert_.empty()) {
      batch_route_targets(b, domain_expert_, route_targets_);
      opts.route_targets = route_targets_;
    }
    micro_losses[mi] = model_.forward_backward(b.tokens, b.targets, b.rows, opts);
  }
  dp_->finish_step(micro_losses);
  for (const TrainingLoss& l : micro_losses) {
    r.loss.lm_sum += l.lm_sum;
    r.loss.lm_tokens += l.lm_tokens;
    r.loss.lb += l.lb / cfg_.grad_accum;
    r.loss.z += l.z / cfg_.grad_accum;
    r.loss.domain += l.domain / cfg_.grad_accum;
  }
  r.grad_norm = opt_->clip_grad_norm(cfg_.clip);
  const double loss = r.loss.lm();
  MF_CHECK(std::isfinite(loss) && std::isfinite(r.grad_norm), "step ", step + 1, ": non-finite ",
           std::isfinite(loss) ? "gradient norm" : "loss", " (loss ", loss, ", grad norm ", r.grad_norm,
           "); stopped without updating. The last checkpoint in ", cfg_.out_dir, " is the last good state");
  r.lr_mult = schedule.multiplier(step);
  opt_->step(r.lr_mult);
  if (cfg_.balance_bias_rate > 0)
    MF_CHECK(model_.update_selection_bias(cfg_.balance_bias_rate), "train.balance_bias_rate is set but the model ",
             "has no router selection bias (set router_selection_bias: true in the model config)");
  return r;
}

void Trainer::evaluate_and_track_best(int64_t step, TrainResult& result, nlohmann::json& rec) {
  result.valid_loss = evaluate();
  rec["valid_loss"] = result.valid_loss;
  rec["valid_ppl"] = std::exp(result.valid_loss);
  bool better = result.best_step == 0 || result.valid_loss < result.best_valid_loss;
  // Expert parallel: exporting is collective, so every rank follows rank 0's record of the best
  // (only rank 0 read it back on a resume).
  if (dp_->expert_parallel()) better = dp_->agree(better);
  if (!better) return;
  // Best-checkpoint tracking: the model at its lowest validation loss so far.
  result.best_valid_loss = result.valid_loss;
  result.best_step = step;
  rec["best"] = true;
  const fs::path best = fs::path(cfg_.out_dir) / "best";
  if (!dp_->is_root()) {  // rank 0 alone writes files (expert parallel: the others send it their experts)
    if (dp_->expert_parallel()) export_model(best.string());
    return;
  }
  try {
    export_model(best.string());
    const std::string state = nlohmann::json{{"step", step}, {"valid_loss", result.valid_loss}}.dump() + "\n";
    write_text_atomic((best / "trainer_state.json").string(), state);
  } catch (const Error& e) {
    fail(e.what(), "; the best model of step ", step, " was not exported, ", stopped_note(step));
  }
}

std::string Trainer::stopped_note(int64_t step) const {
  // Say what is really on disk: a run that never reached a checkpoint has none to resume from.
  const fs::path checkpoint = fs::path(cfg_.out_dir) / "checkpoint.safetensors";
  std::error_code ec;
  if (!fs::exists(checkpoint, ec))
    return cat("stopped after step ", step, ". No checkpoint was written yet (train.checkpoint_every sets how often), ",
               "so the run must start again");
  return cat("stopped after step ", step, ". The last checkpoint in ", cfg_.out_dir, " is the last good state");
}

TrainResult Trainer::run() {
  // Data parallel: rank 0 alone reads and writes the run directory; the other ranks take its
  // starting state (fresh or resumed) and train the same steps without writing anything.
  const bool root = dp_->is_root();
  const std::string metrics_path = (fs::path(cfg_.out_dir) / "metrics.jsonl").string();
  TrainResult result;
  result.out_dir = cfg_.out_dir;
  int64_t step = 0;
  if (root) {
    fs::create_directories(cfg_.out_dir);
    remove_stale_temporaries(cfg_.out_dir);
  }
  if (cfg_.resume) step = load_checkpoint();
  else dp_->share_root_state(*opt_, step, data_);  // replicas start from rank 0's weights
  // Expert parallel: the experts other ranks hold were needed here only to start them (rank 0
  // sent its copies); from now on rank 0 receives them from their holders when it writes.
  if (dp_->expert_parallel()) model_.release_remote_experts();
  if (root) prepare_run_dir(step, metrics_path, result);
  TrainingProgress progress(stderr, isatty(STDERR_FILENO) != 0, cfg_.steps, step);
  const bool talk = root && cfg_.progress;
  if (talk) {
    if (dp_->distributed()) progress.note(dp_->layout(cfg_.grad_accum));
    if (!domain_expert_.empty())
      progress.note(cat("router supervision (coef ", cfg_.router_domain_coef,
                        cfg_.router_domain_per_token ? ", per token" : "",
                        "): ", describe_domain_experts(data_.domain_names(), domain_expert_)));
    if (model_.routers_train_in_forward())
      progress.note("only top-1 routers train: the LM loss gives them no gradient, so each step is a forward that "
                    "adds the routers' aux-loss gradients (lb_coef, z_coef, router_domain_coef); no backward");
    progress.note(training_start_notes(cfg_.resume, step, cfg_.steps, cfg_.warmup,
                                       (fs::path(cfg_.out_dir) / "checkpoint.safetensors").string()));
  }
  std::ofstream log;
  if (root) log.open(metrics_path, std::ios::app);
  const WarmupCosine schedule{cfg_.warmup, cfg_.steps, cfg_.min_lr_ratio};
  std::vector<Batch> micro(size_t(cfg_.grad_accum));
  int64_t tokens_seen = 0;
  double step_seconds = 0;  // optimizer steps only: evaluation and checkpoints excluded from tokens/s
  Timer wall;
  while (step < cfg_.steps) {
    Timer step_timer;
    const StepResult r = optimizer_step(step, micro, schedule);
    ++step;
    const double step_s = step_timer.seconds();
    const double loss = r.loss.lm();
    result.train_loss = loss;
    nlohmann::json rec = {{"step", step},
                          {"loss", loss},
                          {"lb_loss", r.loss.lb},
                          {"z_loss", r.loss.z},
                          {"domain_loss", r.loss.domain},
                          {"lr", cfg_.lr * r.lr_mult},
                          {"grad_norm", r.grad_norm},
                          {"tokens_per_s", double(r.tokens) / step_s}};
    tokens_seen += r.tokens;
    step_seconds += step_s;
    add_routing_stats(model_.routing_stats(), rec);
    if (ExpertGroup* group = model_.expert_group()) {
      // This rank's expert all-to-alls of the step: rows sent to other ranks, time inside them.
      rec["ep_bytes_sent"] = group->stats().bytes_sent;
      rec["ep_exchange_s"] = group->stats().seconds;
    }
    if (dp_->distributed()) {
      const GradientSyncStats sync = dp_->sync_stats();
      rec["dist_ranks"] = dp_->comm().size();
      rec["dist_wait_s"] = sync.wait_seconds;  // all-reduce time not hidden behind backward
      rec["dist_buckets"] = sync.buckets;
      rec["dist_buckets_in_backward"] = sync.started_in_backward;  // started before backward ended
    }
    // Rank 0's clock decides the time budget for every rank, so all stop at the same step.
    const bool finished = step == cfg_.steps ||
                          dp_->agree(cfg_.max_minutes > 0 && wall.seconds() > cfg_.max_minutes * 60);
    // stop_after pauses a run to be resumed: no final evaluation, so the resumed log equals
    // an uninterrupted one.
    const bool last = finished || (cfg_.stop_after > 0 && step >= cfg_.stop_after);
    if (finished || (cfg_.eval_every > 0 && step % cfg_.eval_every == 0)) {
      evaluate_and_track_best(step, result, rec);
      if (talk) progress.evaluation(step, loss, result.valid_loss, rec.contains("best"));
    }
    if (root) {
      log << rec.dump() << "\n";
      log.flush();
      MF_CHECK(log.good(), metrics_path, ": cannot write the metrics log (disk full?); ", stopped_note(step));
    }
    if (last || (cfg_.checkpoint_every > 0 && step % cfg_.checkpoint_every == 0)) {
      dp_->check_replicas_agree(*opt_);
      try {
        save_checkpoint(step);
      } catch (const Error& e) {
        fail(e.what(), "; the checkpoint of step ", step, " was not written, ", stopped_note(step));
      }
    }
    if (talk)
      progress.step(step, loss, double(cfg_.lr * r.lr_mult), double(tokens_seen) / std::max(step_seconds, 1e-9),
                    wall.seconds(), last);
    if (last) break;
  }
  result.steps = step;
  result.wall_s = wall.seconds();
  result.tokens_per_s = double(tokens_seen) / std::max(step_seconds, 1e-9);
  result.model_dir = (fs::path(cfg_.out_dir) / "model").string();
  if (root || dp_->expert_parallel()) export_model(result.model_dir);
  return result;
}

}  // namespace mf
