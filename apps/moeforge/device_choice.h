// Which device a run uses (`--device auto|cpu|cuda`) and the models built for it.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "infer/bundle.h"
#include "model/trainable_transformer.h"
#include "train/trainable_model.h"

namespace mf::cli {

// Throws UsageError unless device is auto, cpu or cuda (checked before any work starts).
void check_device_flag(const std::string& device);

// The model a run trains: the CPU model through its adapter, or the CUDA model.
struct RunModel {
  std::unique_ptr<TrainableTransformer> cpu;  // set on the CPU path (the adapter refers to it)
  std::unique_ptr<TrainableModel> model;
};

// device: "cpu", "cuda", or "auto" (cuda when this build has CUDA, a GPU is present and the
// CUDA path runs this model; otherwise cpu, saying why on stderr unless quiet). An explicit
// "cuda" that cannot be honoured is an mf::Error with the reason.
// experts: expert parallelism's group (dist.expert_parallel > 1): the CPU model with the routed
// experts split over it; a run that would choose CUDA is refused by name. recompute:
// train.recompute, which only the CPU model implements (auto picks the CPU for it).
RunModel make_training_model(ModelWeights weights, const std::function<bool(const std::string&)>& frozen,
                             const std::string& device, bool quiet, ExpertGroup* experts = nullptr,
                             bool recompute = false);

// LoadOptions::make_model for inference commands: on "cuda" the GPU model (an mf::Error when
// it cannot run); on "auto" the GPU model when there is a GPU and the CUDA path runs the model,
// else null (the CPU path); on "cpu" an empty function.
std::function<std::unique_ptr<LanguageModel>(ModelWeights&, int)> inference_model_factory(const std::string& device);

}  // namespace mf::cli
