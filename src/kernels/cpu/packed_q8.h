// Weights repacked for the int8 decode path (QuantDot::int8): Q4_0, Q4_1 and Q8_0 matrices
// rearranged so that one 512-bit register holds 4 consecutive weights of 16 different output
// rows. A broadcast of 4 int8 activations and one VNNI vpdpbusd then advance 16 rows at
// once, and the block scales of those 16 rows convert in one instruction: the per-row,
// per-block scalar work that bounds a row-major GEMV disappears, and decode becomes bound by
// the bytes it streams.
//
// Layout: rows in groups of 16 (the last group zero-padded), and per group, per block of 32:
//   Q4_0 / Q4_1: d[16] fp16, (Q4_1: m[16] fp16), then 4 chunks of 64 bytes; in chunk c, row
//                j's 4 bytes are its block bytes 4c..4c+3 (low nibbles: elements 4c..4c+3,
//                high nibbles: elements 16+4c..16+4c+3, as in the stored block).
//   Q8_0:        d[16] fp16, wsum[16] int16 (sum of the row's 32 weights), then 8 chunks of
//                64 bytes; in chunk c, row j's 4 bytes are its weights 4c..4c+3.
// The scales are the stored fp16 values, so the packed matrix holds exactly the same weights.
#pragma once
#include <cstdint>
#include <memory>

#include "core/tensor.h"

namespace mf {

class PackedQ8Matrix {
 public:
  // True if `w` is a 2-D Q4_0/Q4_1/Q8_0 matrix and this build/CPU has the VNNI kernels.
  static bool supports(const Tensor& w);
  // Throws mf::Error if !supports(w).
  explicit PackedQ8Matrix(const Tensor& w);

  // y[M, N] = q8(x[M, K]) . W^T for M in [1, 8]: activations quantized per block of 32 to
  // int8 (scale amax/127, round half to even); every term uses the quantized activations.
  void gemv(const float* x, int64_t M, float* y) const;

  int64_t rows() const { return N_; }
  int64_t cols() const { return K_; }
  DType source_dtype() const { return dtype_; }
  size_t bytes() const { return size_; }

 private:
  DType dtype_;
  int64_t N_ = 0, K_ = 0, groups_ = 0, blocks_ = 0;
  size_t record_bytes_ = 0;  // one (group, block) record
  size_t size_ = 0;
  std::unique_ptr<uint8_t[]> storage_;  // over-allocated by 63 bytes for 64-byte alignment
  uint8_t* data_ = nullptr;
};

}  // namespace mf
