// One SwiGLU MLP on the GPU, down(silu(gate(x)) * up(x)) with [gate; up] as one GEMM, forward
// and backward side by side: dense layers and shared experts, in training and inference (the
// routed experts run the same math as grouped GEMMs in gpu/moe_ffn). Twin of model/swiglu.h.
#pragma once
#include "gpu/device_step.h"
#include "gpu/layer_binding.h"

namespace mf::gpu {

struct SwigluSaved {
  bf16* gate_up = nullptr;  // [rows, 2I] pre-activations
  bf16* product = nullptr;  // [rows, I] silu(gate) * up
};

// y [rows, H] (= beta * y +) the MLP of x [rows, H], as y_type. The saved buffers come from the
// arena (the caller rewinds it when nothing is kept for a backward).
void swiglu_forward(DeviceStep& d, const SwigluBinding& w, const bf16* x, int64_t rows, int64_t H, SwigluSaved& S,
                    void* y, OutType y_type, float beta);

// From dy [rows, H]: dx [rows, H] (= beta * dx +) as dx_type; the weight gradients accumulate
// into w's gradient buffers (those that train). Scratch comes from the arena.
void swiglu_backward(DeviceStep& d, const SwigluBinding& w, const bf16* x, int64_t rows, int64_t H,
                     const SwigluSaved& S, const bf16* dy, void* dx, OutType dx_type, float beta);

}  // namespace mf::gpu
