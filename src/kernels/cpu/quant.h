// GGML block formats <-> fp32. Block layouts are ggml's (ggml-common.h): 32-element blocks for
// Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, 256-element super-blocks for the K-quants. Values match gguf-py's
// quants.py (the reference reader) and ggml's dequantize_row_* bit for bit on the same inputs.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace mf {

// Dequantize n consecutive elements (n multiple of the block size) of type t to fp32.
// F32/F16/BF16 and Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
// Throws mf::Error for other types or a bad n.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// Quantize fp32 -> Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 with ggml's reference round-to-nearest
// (quantize_row_*_ref), Q4_K / Q5_K / Q6_K with a weighted search for each sub-block's scale
// (and min) (quant_k_search.cpp), and F32/F16/BF16 (round to nearest even). dst holds
// dtype_bytes(t, n).
void quantize_row(DType t, const float* src, void* dst, int64_t n);

// True if dequantize_row / quantize_row accept t.
bool can_dequantize(DType t);
bool can_quantize(DType t);

// Tensor::to_f32() (declared in core/tensor.h) is defined in quant.cpp.

}  // namespace mf
