#include "device_choice.h"

#include <cstdio>

#include "common.h"
#include "core/error.h"
#include "cuda_module.h"

namespace mf::cli {

void check_device_flag(const std::string& device) {
  if (device != "auto" && device != "cpu" && device != "cuda")
    throw UsageError("--device must be auto, cpu or cuda, not '" + device + "'");
}

namespace {

RunModel on_cpu(ModelWeights weights, const std::function<bool(const std::string&)>& frozen,
                ExpertGroup* experts) {
  RunModel out;
  out.cpu = std::make_unique<TrainableTransformer>(std::move(weights), frozen, experts);
  out.model = std::make_unique<CpuTrainableModel>(*out.cpu);
  return out;
}

}  // namespace

RunModel make_training_model(ModelWeights weights, const std::function<bool(const std::string&)>& frozen,
                             const std::string& device, bool quiet, ExpertGroup* experts, bool recompute) {
  check_device_flag(device);
  if (device == "cpu") return on_cpu(std::move(weights), frozen, experts);
  std::string why_not;
  const gpu::Plugin* cuda = cuda_module(&why_not);
  if (cuda) {
    if (cuda->device_count() == 0)
      why_not = "no CUDA device on this machine";
    else if (std::string unsupported = cuda->training_unsupported(weights.config); !unsupported.empty())
      why_not = "the CUDA training path does not implement " + unsupported + " yet";
    else if (recompute)
      why_not = "the CUDA training path does not implement train.recompute (activation recomputation) yet";
  }
  if (why_not.empty()) {
    MF_CHECK(!experts, "dist.expert_parallel: expert parallelism exchanges rows in host memory and trains the CPU "
             "model; train with --device cpu under mpirun");
    RunModel out;
    out.model = cuda->make_trainable_model(std::move(weights), frozen);
    if (!quiet) std::fprintf(stderr, "device: %s\n", out.model->device().c_str());
    return out;
  }
  MF_CHECK(device != "cuda", "--device cuda: ", why_not);
  // Saying "cpu" on a machine that has no GPU at all is noise; a GPU the run cannot use is news.
  if (!quiet && cuda) std::fprintf(stderr, "device: cpu (%s)\n", why_not.c_str());
  return on_cpu(std::move(weights), frozen, experts);
}

std::function<std::unique_ptr<LanguageModel>(ModelWeights&, int)> inference_model_factory(const std::string& device) {
  check_device_flag(device);
  if (device == "cpu") return {};
  std::string why_not;
  const gpu::Plugin* cuda = cuda_module(&why_not);
  if (!cuda) {
    MF_CHECK(device != "cuda", "--device cuda: ", why_not);
    return {};
  }
  return [device, cuda](ModelWeights& weights, int max_len) -> std::unique_ptr<LanguageModel> {
    std::string why_not;
    if (cuda->device_count() == 0)
      why_not = "no CUDA device on this machine";
    else if (std::string unsupported = cuda->inference_unsupported(weights.config); !unsupported.empty())
      why_not = "the CUDA inference path does not implement " + unsupported + " yet";
    if (why_not.empty()) return cuda->make_language_model(std::move(weights), max_len);
    MF_CHECK(device != "cuda", "--device cuda: ", why_not);
    return nullptr;
  };
}

}  // namespace mf::cli
