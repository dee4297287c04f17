#include "gpu/plugin.h"

#include "gpu/cuda_inference.h"
#include "gpu/cuda_trainable_model.h"
#include "kernels/cuda/device.h"

namespace mf::gpu {
namespace {

std::unique_ptr<TrainableModel> make_trainable(ModelWeights weights,
                                               const std::function<bool(const std::string&)>& frozen) {
  return std::make_unique<CudaTrainableModel>(std::move(weights), frozen);
}

constexpr Plugin kPlugin{kPluginAbi,           &cuda::device_count,  &cuda_training_unsupported,
                         &cuda_inference_unsupported, &make_trainable, &make_cuda_language_model};

}  // namespace
}  // namespace mf::gpu

extern "C" __attribute__((visibility("default"))) const mf::gpu::Plugin* moeforge_cuda_plugin() {
  return &mf::gpu::kPlugin;
}
