// Tensors that point into a file mapping: zero-copy when the bytes are aligned for their
// element type, otherwise copied into aligned heap storage (a misaligned typed load is UB).
#pragma once
#include <cstddef>
#include <memory>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace mf {

// A tensor over `bytes` starting at `data`, which must lie inside `file`'s mapping.
Tensor mapped_tensor_view(const std::shared_ptr<MappedFile>& file, const uint8_t* data,
                          DType dtype, Shape shape);

}  // namespace mf
