#include "device_choice.h"

#include <cstdio>

#include "common.h"
#include "core/error.h"

#ifdef MOEFORGE_HAVE_CUDA
#include "gpu/cuda_inference.h"
#include "gpu/cuda_trainable_model.h"
#include "kernels/cuda/device.h"
#endif

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
#ifdef MOEFORGE_HAVE_CUDA
  std::string why_not;
  if (cuda::device_count() == 0)
    why_not = "no CUDA device on this machine";
  else if (std::string unsupported = gpu::cuda_training_unsupported(weights.config); !unsupported.empty())
    why_not = "the CUDA training path does not implement " + unsupported + " yet";
  else if (recompute)
    why_not = "the CUDA training path does not implement train.recompute (activation recomputation) yet";
  if (why_not.empty()) {
    MF_CHECK(!experts, "dist.expert_parallel: expert parallelism exchanges rows in host memory and trains the CPU "
             "model; train with --device cpu under mpirun");
    RunModel out;
    out.model = std::make_unique<gpu::CudaTrainableModel>(std::move(weights), frozen);
    if (!quiet) std::fprintf(stderr, "device: %s\n", out.model->device().c_str());
    return out;
  }
  MF_CHECK(device != "cuda", "--device cuda: ", why_not);
  if (!quiet) std::fprintf(stderr, "device: cpu (%s)\n", why_not.c_str());
#else
  MF_CHECK(device != "cuda", "--device cuda: this moeforge was built without CUDA (configure with nvcc present)");
#endif
  return on_cpu(std::move(weights), frozen, experts);
}

std::function<std::unique_ptr<LanguageModel>(ModelWeights&, int)> inference_model_factory(const std::string& device) {
  check_device_flag(device);
  if (device == "cpu") return {};
#ifdef MOEFORGE_HAVE_CUDA
  return [device](ModelWeights& weights, int max_len) -> std::unique_ptr<LanguageModel> {
    std::string why_not;
    if (cuda::device_count() == 0)
      why_not = "no CUDA device on this machine";
    else if (std::string unsupported = gpu::cuda_inference_unsupported(weights.config); !unsupported.empty())
      why_not = "the CUDA inference path does not implement " + unsupported + " yet";
    if (why_not.empty()) return gpu::make_cuda_language_model(std::move(weights), max_len);
    MF_CHECK(device != "cuda", "--device cuda: ", why_not);
    return nullptr;
  };
#else
  if (device == "cuda") fail("--device cuda: this moeforge was built without CUDA (configure with nvcc present)");
  return {};
#endif
}

}  // namespace mf::cli
