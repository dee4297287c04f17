// The training loop: batches from a TrainingData source, gradient accumulation, global-norm clipping, AdamW with
// a warmup-cosine schedule, evaluation on the validation split, a JSONL metrics log, a progress
// line, atomic checkpoints that resume the same loss curve bit for bit, and an HF-style export.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "model/trainable_transformer.h"
#include "train/data_parallel.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/trainable_model.h"
#include "train/training_data.h"

namespace mf {

struct TrainerConfig {
  int64_t steps = 100;          // optimizer steps
  int batch = 8;                // sequences per micro-batch (SFT: at most, under batch x seq_len tokens)
  int seq_len = 128;            // window length (SFT: longest example, in predicted positions)
  int grad_accum = 1;           // micro-batches per optimizer step
  float lr = 1e-3f;
  float moe_lr_scale = 1.0f;    // routers and experts train at lr * moe_lr_scale
  float min_lr_ratio = 0.1f;
  int64_t warmup = 10;
  float weight_decay = 0.1f;    // not applied to norms and biases
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float clip = 1.0f;            // global gradient norm; 0: off
  float lb_coef = 0.01f, z_coef = 0.0f;
  bool lb_per_sequence = false; // load-balancing loss within each sequence (DeepSeek) instead of per batch
  bool recompute = false;       // activation recomputation per layer (StepOptions::recompute)
  float balance_bias_rate = 0;  // aux-loss-free balancing: selection-bias step per optimizer step
  // Router supervision from domain labels (train/domain_routing.h): the coefficient of the loss
  // pulling each record's mean routing towards the expert named after its domain; 0: off.
  float router_domain_coef = 0;
  bool router_domain_per_token = false;  // train.router_domain_scope: token instead of record
  int64_t eval_every = 50;      // 0: only at the end
  int eval_windows = 16;        // validation windows (SFT: examples; 0 = all) scored per evaluation
  int64_t checkpoint_every = 0; // 0: only at the end
  uint64_t seed = 0;
  double max_minutes = 0;       // 0: no time budget
  int64_t stop_after = 0;       // >0: end (with a checkpoint) after this step, schedule unchanged
  bool resume = false;          // continue from out_dir/checkpoint.safetensors
  bool progress = true;         // progress line on stderr
  bool shard_optimizer = false; // dist.shard_optimizer: ZeRO-1 in a data-parallel job (no effect alone)
  int expert_parallel = 1;      // dist.expert_parallel: ranks per expert-parallel group (1: every rank all experts)
  std::string out_dir;          // metrics.jsonl, checkpoint.safetensors, model/, best/
};

struct TrainResult {
  int64_t steps = 0;
  double train_loss = 0, valid_loss = 0;  // last step's LM loss, last evaluation's
  double best_valid_loss = 0;             // the lowest evaluation, exported to out_dir/best
  int64_t best_step = 0;
  double tokens_per_s = 0, wall_s = 0;   // tokens/s over the optimizer steps; wall_s: the whole run
  std::string out_dir, model_dir;
};

class Trainer {
 public:
  // model and data must outlive the trainer. Throws mf::Error for an invalid config.
  Trainer(TrainableModel& model, TrainingData& data, TrainerConfig config);
  // The CPU model, adapted by CpuTrainableModel.
  Trainer(TrainableTransformer& model, TrainingData& data, TrainerConfig config);
  // Trains to config.steps (or the time budget), evaluating, logging and checkpointing; ends
  // with a checkpoint and an export of the model (config.json + model.safetensors) to
  // out_dir/model. A non-finite loss or gradient norm stops with mf::Error naming the step; the
  // last checkpoint on disk is then the last good one.
  TrainResult run();
  // Mean LM loss over the fixed validation batches.
  double evaluate();
  // Called with each exported model directory (out_dir/best at a new best, out_dir/model at the
  // end) right after its weights are written: the caller adds what makes it loadable on its own
  // (the tokenizer), so best/ is usable even if the run is killed later.
  void set_export_hook(std::function<void(const std::string& dir)> hook);
  // Makes this trainer one rank of a data-parallel job (train/data_parallel.h); without it, or
  // with a job of one process, training is the single-process run. comm must outlive the trainer.
  // experts: expert parallelism's groups, over which the model's experts are split (the model
  // was built with experts->experts() as its ExpertGroup); they must outlive the trainer.
  // Throws mf::Error if this job cannot train the model data-parallel.
  void set_communicator(Communicator& comm, ExpertGroups* experts = nullptr);

 private:
  Trainer(std::unique_ptr<TrainableModel> owned, TrainingData& data, TrainerConfig config);
  void make_optimizer();
  OptimizerSpec optimizer_spec() const;
  // The end of every "could not write" message: where the run stopped and what is still good.
  std::string stopped_note(int64_t step) const;
  // Both collective in a data-parallel job: every rank calls them; rank 0 alone touches the file
  // (load: it reads, the others receive).
  void save_checkpoint(int64_t step);
  int64_t load_checkpoint();
  // Rank 0 writes the model; with expert parallelism every rank calls it (rank 0 receives the
  // experts it does not hold).
  void export_model(const std::string& dir);
  // Rank 0's run directory at the start: metrics.jsonl cut back to the resumed step (or
  // started afresh) and the best model so far.
  void prepare_run_dir(int64_t step, const std::string& metrics_path, TrainResult& result);
  // One optimizer step over grad_accum micro-batches drawn from the data: forward/backward with
  // the loss averaged over every scored token, clipping, the update, the selection-bias rule.
  struct StepResult {
    TrainingLoss loss;  // lb, z and domain averaged over the micro-batches
    double grad_norm = 0;
    float lr_mult = 0;  // the schedule's multiplier of this step
    int64_t tokens = 0;  // real tokens of the step (padding excluded)
  };
  StepResult optimizer_step(int64_t step, std::vector<Batch>& micro, const WarmupCosine& schedule);
  // Evaluates into rec and, at a new best validation loss, exports out_dir/best.
  void evaluate_and_track_best(int64_t step, TrainResult& result, nlohmann::json& rec);

  std::function<void(const std::string& dir)> export_hook_;
  std::unique_ptr<TrainableModel> owned_model_;  // the CPU adapter, when constructed from one
  TrainableModel& model_;
  TrainingData& data_;
  TrainerConfig cfg_;
  std::unique_ptr<Optimizer> opt_;
  LocalCommunicator one_process_;     // the job when set_communicator is not called
  std::unique_ptr<DataParallel> dp_;  // over one_process_ or the job's communicator
  std::vector<int32_t> domain_expert_;  // router supervision: per data domain, its expert or -1
  std::vector<int32_t> route_targets_;  // router supervision: the current micro-batch's
};

}  // namespace mf
