// Tensor: a typed, shaped view of memory that owns (or shares ownership of) its bytes.
// Shapes are in PyTorch / Hugging Face order (outermost first, row-major, contiguous).
// Memory may be a heap buffer or a read-only file mapping (zero-copy weights); `owner`
// keeps whichever it is alive as long as any view of it exists.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mf {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // A view over memory kept alive by `owner` (e.g. a MappedFile).
  Tensor(DType dtype, Shape shape, void* data, std::shared_ptr<const void> owner);

  // Fresh, 64-byte aligned heap storage.
  static Tensor empty(DType dtype, Shape shape);
  static Tensor zeros(DType dtype, Shape shape);
  static Tensor from_f32(Shape shape, std::span<const float> values);

  bool defined() const { return data_ != nullptr || numel() == 0; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const;

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <class T> T* data() { return static_cast<T*>(data_); }
  template <class T> const T* data() const { return static_cast<const T*>(data_); }

  // Same bytes, new shape (numel must match; quantized rows must stay whole).
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) of the outermost dimension, sharing storage.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // A copy converted to F32 (dequantizes block formats). Defined in kernels/cpu/quant.cpp.
  Tensor to_f32() const;
  // A deep copy with its own storage.
  Tensor clone() const;

  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  void* data_ = nullptr;
  std::shared_ptr<const void> owner_;
};

}  // namespace mf
