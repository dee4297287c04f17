// Q4_0, Q4_1 and Q8_0 weight matrices repacked for decode and short prompts (M <= 256 rows): one
// 512-bit register holds 4 consecutive weights of 16 different output rows, so every vector
// instruction advances 16 rows at once and the block scales of those 16 rows convert in one
// instruction. The per-row, per-block scalar work that bounds a row-major GEMV disappears.
//
// Two ways to multiply, both over the same packed bytes:
//   gemv_f32  fp32 activations: each weight becomes an exact float through a 16-entry table
//             (vpermps); equals x . dequantize(W)^T up to fp32 summation order (~1e-6).
//   gemv_int8 activations quantized to int8 per block of 32 (scale amax/127, round half to
//             even) and VNNI vpdpbusd integer dot products, as llama.cpp does: memory bound,
//             but the activation rounding moves results by ~1e-2 relative.
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

// How decode rows multiply a packed copy.
enum class DecodeActivations {
  fp32,  // exact: equals x . dequantize(W)^T (PackedQuantMatrix::gemv_f32)
  int8,  // llama.cpp's int8 activations: faster, ~1e-2 relative off (gemv_int8)
};

// Activation rows x[M, K] prepared once for every packed matrix of width K that multiplies them
// (a layer's q/k/v, its gate/up): Q4_1's block sums for the fp32 path, the int8 blocks for the
// int8 path. The fp32 path reads x itself, which must outlive the multiplications.
class PackedActivations {
 public:
  PackedActivations();
  ~PackedActivations();
  PackedActivations(const PackedActivations&) = delete;
  PackedActivations& operator=(const PackedActivations&) = delete;

  // M in [1, PackedQuantMatrix::kMaxRows], K a positive multiple of 32.
  void prepare(const float* x, int64_t M, int64_t K, DecodeActivations kind);
  int64_t rows() const;
  int64_t cols() const;
  DecodeActivations kind() const;

 private:
  friend class PackedQuantMatrix;
  struct Data;
  std::unique_ptr<Data> d_;
};

class PackedQuantMatrix {
 public:
  // True if `w` is a 2-D Q4_0/Q4_1/Q8_0 matrix and this build has the AVX-512 kernels
  // (VNNI for gemv_int8, plain AVX-512 for gemv_f32).
  static bool supports(const Tensor& w);
  // Throws mf::Error if !supports(w).
  explicit PackedQuantMatrix(const Tensor& w);

  // Most activation rows one call takes (a server's decode batch, a prompt chunk).
  static constexpr int64_t kMaxRows = 256;

  // y[M, N] = x[M, K] . W^T for M in [1, kMaxRows], fp32 activations (exact path). Each row's
  // result is independent of the other rows.
  void gemv_f32(const float* x, int64_t M, float* y) const;
  // y[M, N] = q8(x[M, K]) . W^T for M in [1, kMaxRows]: int8 activations, every term (Q4_0's
  // -8, Q4_1's minimum) paired with the quantized activations.
  void gemv_int8(const float* x, int64_t M, float* y) const;

  // y[M, N] = a . W^T over every group of output rows, parallel (work_pool.h).
  void multiply(const PackedActivations& a, float* y) const;
  // Output rows come in groups of kGroupRows, the unit of parallel work: multiply_groups computes
  // the columns of y for groups [g0, g1) only, on the calling thread.
  static constexpr int64_t kGroupRows = 16;
  int64_t groups() const { return groups_; }
  void multiply_groups(const PackedActivations& a, int64_t g0, int64_t g1, float* y) const;
  // Groups per chunk of parallel work for `rows` activation rows: a claim should cost far less
  // than the work it hands out.
  int64_t groups_per_chunk(int64_t rows) const;

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

  // Writes group g's records from the stored rows.
  void pack_group(const uint8_t* src, size_t row_bytes, size_t block_bytes, int64_t g);
};

}  // namespace mf
