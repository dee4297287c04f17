// moeforge train RECIPE.yaml: pretraining from scratch, fine-tuning, router-only training.
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "device_choice.h"
#include "dist/expert_groups.h"
#include "dist/launch.h"
#include "model/config.h"
#include "model/tensor_names.h"
#include "train/freeze.h"
#include "train/recipe.h"
#include "train/session.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace mf::cli {

namespace {

// One rank's run (the whole run in a job of one process): the recipe, the session, the trainer.
int train_one_rank(const std::string& recipe_path, std::vector<std::string> sets, const std::string& output,
                   int max_steps, float max_minutes, bool resume, bool quiet, const std::string& device,
                   Communicator& comm) {
  // Rank 0 alone prints and writes; the other ranks train silently beside it.
  const bool root = comm.rank() == 0;
  if (!root) quiet = true;

  // -o stands for the recipe's output key, so a recipe without one runs with it (a path typed on
  // the command line is relative to the working directory).
  if (!output.empty()) sets.push_back("output=" + std::filesystem::absolute(output).string());
  Recipe r = load_recipe(recipe_path, sets);
  if (max_steps > 0) r.trainer.steps = max_steps;
  if (max_minutes > 0) r.trainer.max_minutes = max_minutes;
  r.trainer.resume = resume;
  r.trainer.progress = !quiet;

  // Expert parallelism: groups of dist.expert_parallel ranks share out the routed experts; in one
  // process (or at 1) every expert is here, as without it.
  const int ep = r.trainer.expert_parallel;
  MF_CHECK(ep == 1 || comm.size() > 1, r.path, ": 'dist.expert_parallel' = ", ep,
           " needs an MPI job of a multiple of ", ep, " ranks (mpirun -np N moeforge train ...); in one process it "
           "must be 1");
  std::unique_ptr<ExpertGroups> groups = ep > 1 ? std::make_unique<ExpertGroups>(comm, ep) : nullptr;
  std::unique_ptr<ExpertGroup> experts = groups ? std::make_unique<ExpertGroup>(groups->experts()) : nullptr;

  std::unique_ptr<TrainingSession> session = prepare_training_session(r, quiet);
  const auto frozen = make_freeze_predicate(r.freeze, session->weights);
  const int64_t total = count_parameters(session->weights.config, false);
  int64_t trainable = 0;
  for (const auto& [name, t] : session->weights.tensors)
    if (is_trainable(name, frozen)) trainable += t.numel();
  RunModel model = make_training_model(std::move(session->weights), frozen, device, quiet, experts.get(),
                                       r.trainer.recompute);
  if (!quiet)
    std::fprintf(stderr, "%s: %lld parameters (%lld trainable), %s tokenizer of %d, %s\n", r.path.c_str(),
                 (long long)total, (long long)trainable, session->tokenizer->kind.c_str(),
                 session->tokenizer->vocab_size(), session->data_sizes.c_str());
  Trainer trainer(*model.model, *session->data, session->recipe.trainer);
  trainer.set_communicator(comm, groups.get());
  trainer.set_export_hook([&](const std::string& dir) { write_session_tokenizer(*session, dir); });
  const TrainResult result = trainer.run();
  if (!root) return 0;
  const nlohmann::json summary = finish_training_session(*session, result, quiet);
  if (!quiet) std::fprintf(stderr, "%s\n", training_summary(result).c_str());
  std::cout << summary.dump() << std::endl;
  return 0;
}

}  // namespace

int run_train(const std::vector<std::string>& args_in) {
  const std::vector<std::string>& args = args_in;
  std::string recipe_path;
  std::vector<std::string> sets;
  int max_steps = 0, threads = 0;
  float max_minutes = 0;
  std::string output, device = "auto";
  bool resume = false, quiet = false;
  ArgParser p("moeforge train RECIPE.yaml [options]",
              "Trains a model as the recipe says (from scratch, fine-tuning, or only its routers), evaluating, "
              "checkpointing and exporting an HF-style directory; prints a one-line JSON summary.");
  p.positional("RECIPE.yaml", "what to train and how (examples/)", &recipe_path, true);
  p.repeated("set", "KEY=VALUE", "override a recipe key, e.g. --set train.lr=3e-4", &sets);
  p.option("max-steps", "N", "train this many optimizer steps (overrides train.steps)", &max_steps);
  p.option("max-minutes", "M", "stop after M minutes of training (overrides train.max_minutes)", &max_minutes);
  p.option("output", 'o', "DIR", "run directory (overrides output)", &output);
  p.flag("resume", "continue from DIR/checkpoint.safetensors", &resume);
  p.option("threads", "N", "CPU threads, 0 = all (default 0)", &threads);
  p.option("device", 0, "auto|cpu|cuda", "where to train; auto = cuda when a GPU is present and the CUDA path runs "
           "the model (default auto)", &device);
  p.flag("quiet", "no progress line", &quiet);
  p.example("moeforge train examples/shakespeare-moe.yaml", "pretrain a small MoE from scratch as the recipe says");
  p.example("moeforge train examples/smolmoe/train-routers.yaml --max-steps 50 -o runs/try", "train only the routers of a fused model, 50 steps, into runs/try");
  p.example("mpirun -np 2 moeforge train examples/shakespeare-moe.yaml", "the same run over 2 processes (docs/distributed.md)");
  p.example("mpirun -np 4 moeforge train RECIPE.yaml --set dist.expert_parallel=2", "4 ranks, each MoE layer's experts split over groups of 2");
  if (!parse_or_usage(p, args)) return 0;
  check_device_flag(device);
  if (max_steps < 0 || threads < 0 || max_minutes < 0) throw UsageError("--max-steps, --max-minutes and --threads must be >= 0");
  if (threads > 0) omp_set_num_threads(threads);

  // Under mpirun this process is one rank of a data-parallel job (docs/distributed.md); alone,
  // a job of one process that makes no MPI call.
  const std::unique_ptr<Communicator> comm = make_communicator();
  if (comm->size() == 1) return train_one_rank(recipe_path, sets, output, max_steps, max_minutes, resume, quiet,
                                               device, *comm);
  try {
    return train_one_rank(recipe_path, sets, output, max_steps, max_minutes, resume, quiet, device, *comm);
  } catch (const std::exception& e) {
    // The other ranks would wait for this one in their next collective: end the whole job.
    std::fprintf(stderr, "moeforge train: error on rank %d of %d: %s\n", comm->rank(), comm->size(), e.what());
    std::fflush(stderr);
    comm->abort(1);
    return 1;  // not reached: abort() ends every rank
  }
}

}  // namespace mf::cli
