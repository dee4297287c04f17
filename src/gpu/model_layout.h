// What the CUDA training and inference models share: which models the CUDA path runs, the
// order in which tensors are laid out on the device, the gate/up adjacency rule, and the router
// kernel's kind for a routing policy. (A layer's tensors are bound in gpu/layer_binding.)
#pragma once
#include <string>
#include <vector>

#include "gpu/param_store.h"
#include "kernels/cuda/router.h"
#include "model/config.h"

namespace mf::gpu {

// What the CUDA path does not implement for this model, or "" when it runs it.
std::string cuda_unsupported(const ModelConfig& c);

// Every weight name the decoder uses, in device layout order: each gate projection (dense,
// expert, shared expert) directly followed by its up projection, so that [gate; up] is one
// [2I, H] matrix and one GEMM. Names a checkpoint lacks are skipped by the ParamStore.
std::vector<std::string> device_layout_order(const ModelConfig& c);

// gate then up, adjacent in their bf16 copy (and, when they train, in their gradient); throws
// mf::Error naming both otherwise (one frozen and one trainable, say).
const bf16* fused_gate_up(const DeviceTensor& gate, const DeviceTensor& up);

// The router kernel's kind: noisy top-k selects like top-k-then-softmax (over noisy logits in
// training, the clean ones otherwise).
cuda::TopKGating topk_gating(RouterPolicy policy);

}  // namespace mf::gpu
