// CUDA rotary position embeddings (twin of kernels/cpu/rope.h, Hugging Face "rotate_half"
// convention: dimension i is paired with i + head_dim/2). Activations are bf16, the rotation is
// computed in fp32 from the same cos/sin values as the CPU table. Device pointers; asynchronous
// on `stream`, no synchronisation, no allocation.
#pragma once
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf {
class RopeTable;
}

namespace mf::cuda {

// The cos/sin table of an mf::RopeTable on the device: [max_positions, head_dim/2] each (the CPU
// table repeats its first half in the second, so half is enough). Built once (synchronous upload).
class DeviceRopeTable {
 public:
  DeviceRopeTable() = default;
  explicit DeviceRopeTable(const RopeTable& host);
  DeviceRopeTable(int head_dim, int max_positions, double theta);  // builds the RopeTable, uploads it

  int head_dim() const { return head_dim_; }
  int max_positions() const { return max_positions_; }
  const float* cos() const { return cos_.as<float>(); }
  const float* sin() const { return sin_.as<float>(); }

 private:
  int head_dim_ = 0;
  int max_positions_ = 0;
  DeviceBuffer cos_, sin_;
};

// Rotates x in place. x: [tokens, heads, head_dim] bf16 (contiguous); positions: [tokens] int32 on
// the device, each in [0, table.max_positions()). Positions come from host data, so the caller
// checks them there; on the device a token with a position outside the table is left unrotated
// (never read out of bounds). head_dim must equal table.head_dim().
void rope_apply(bf16* x, int64_t tokens, int heads, int head_dim, const int32_t* positions,
                const DeviceRopeTable& table, cudaStream_t stream);

// Backward of rope_apply: the gradient rotated back by the same angle (sin negated), in place.
void rope_backward(bf16* dx, int64_t tokens, int heads, int head_dim, const int32_t* positions,
                   const DeviceRopeTable& table, cudaStream_t stream);

}  // namespace mf::cuda
