// Row gathers and scatters by an index list (device pointers): the LM head scores only the
// positions that have a target, so their rows are packed before the head and unpacked after.
#pragma once
#include <cstdint>

#include "kernels/cuda/device.h"

namespace mf::cuda {

// dst[i, :] = src[index[i], :] for i < count; rows of `width` elements.
void gather_rows(const bf16* src, const int32_t* index, int64_t count, int64_t width, bf16* dst, cudaStream_t stream);
// dst[index[i], :] = src[i, :] (indices distinct); other rows of dst are left as they are.
void scatter_rows(const bf16* src, const int32_t* index, int64_t count, int64_t width, bf16* dst, cudaStream_t stream);

}  // namespace mf::cuda
