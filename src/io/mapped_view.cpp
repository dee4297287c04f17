#include "io/mapped_view.h"

#include <cstdint>
#include <cstring>

namespace mf {

namespace {
// The widest scalar a kernel loads from a tensor of this type (block formats start with an
// fp16 or fp32 scale; Q8_K's is fp32).
size_t required_alignment(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32:
    case DType::Q8_K: return 4;
    case DType::I8:
    case DType::U8:
    case DType::BOOL: return 1;
    default: return 2;
  }
}
}  // namespace

Tensor mapped_tensor_view(const std::shared_ptr<MappedFile>& file, const uint8_t* data,
                          DType dtype, Shape shape) {
  if (reinterpret_cast<uintptr_t>(data) % required_alignment(dtype) == 0)
    return Tensor(dtype, std::move(shape), const_cast<uint8_t*>(data), file);
  Tensor copy = Tensor::empty(dtype, std::move(shape));
  if (copy.nbytes()) std::memcpy(copy.raw(), data, copy.nbytes());
  return copy;
}

}  // namespace mf
