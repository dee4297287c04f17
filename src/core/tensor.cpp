#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace mf {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    MF_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
    n *= d;
  }
  return n;
}

Tensor::Tensor(DType dtype, Shape shape, void* data, std::shared_ptr<const void> owner)
    : dtype_(dtype), shape_(std::move(shape)), data_(data), owner_(std::move(owner)) {
  if (is_quantized(dtype_))
    MF_CHECK(!shape_.empty() && shape_.back() % dtype_info(dtype_).block_elems == 0,
             "quantized ", dtype_name(dtype_), " tensor with shape ", shape_str(shape_),
             ": last dimension must be a multiple of ", dtype_info(dtype_).block_elems);
}

Tensor Tensor::empty(DType dtype, Shape shape) {
  size_t bytes = dtype_bytes(dtype, shape_numel(shape));
  size_t padded = (bytes + 63) / 64 * 64;
  void* p = padded ? std::aligned_alloc(64, padded) : nullptr;
  if (padded && !p) throw std::bad_alloc();
  std::shared_ptr<void> owner(p, [](void* q) { std::free(q); });
  return Tensor(dtype, std::move(shape), p, std::move(owner));
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t = empty(dtype, std::move(shape));
  if (t.nbytes()) std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::from_f32(Shape shape, std::span<const float> values) {
  Tensor t = empty(DType::F32, std::move(shape));
  MF_CHECK(int64_t(values.size()) == t.numel(), "from_f32: ", values.size(),
           " values for shape ", shape_str(t.shape()));
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  MF_CHECK(j >= 0 && j < n, "dimension ", i, " out of range for shape ", shape_str(shape_));
  return shape_[size_t(j)];
}

size_t Tensor::nbytes() const { return dtype_bytes(dtype_, numel()); }

Tensor Tensor::reshape(Shape shape) const {
  MF_CHECK(shape_numel(shape) == numel(), "cannot reshape ", shape_str(shape_), " to ",
           shape_str(shape));
  return Tensor(dtype_, std::move(shape), data_, owner_);
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  MF_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "slice_rows(", begin,
           ", ", end, ") out of range for shape ", shape_str(shape_));
  Shape s = shape_;
  s[0] = end - begin;
  size_t row_bytes = shape_[0] ? nbytes() / size_t(shape_[0]) : 0;
  return Tensor(dtype_, std::move(s), static_cast<char*>(data_) + size_t(begin) * row_bytes,
                owner_);
}

Tensor Tensor::clone() const {
  Tensor t = empty(dtype_, shape_);
  if (nbytes()) std::memcpy(t.raw(), data_, nbytes());
  return t;
}

}  // namespace mf
