#include "kernels/cpu/quant.h"

#include <algorithm>
#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "core/half.h"
#include "core/tensor.h"
#include "core/work_pool.h"
#include "kernels/cpu/quant_formats.h"

namespace mf {

namespace {

using DequantFn = void (*)(const uint8_t*, float*, int64_t);
using QuantFn = void (*)(const float*, uint8_t*, int64_t);

DequantFn block_dequantizer(DType t) {
  switch (t) {
    case DType::Q4_0: return quant::dequant_q4_0;
    case DType::Q4_1: return quant::dequant_q4_1;
    case DType::Q5_0: return quant::dequant_q5_0;
    case DType::Q5_1: return quant::dequant_q5_1;
    case DType::Q8_0: return quant::dequant_q8_0;
    case DType::Q2_K: return quant::dequant_q2_k;
    case DType::Q3_K: return quant::dequant_q3_k;
    case DType::Q4_K: return quant::dequant_q4_k;
    case DType::Q5_K: return quant::dequant_q5_k;
    case DType::Q6_K: return quant::dequant_q6_k;
    case DType::Q8_K: return quant::dequant_q8_k;
    default: return nullptr;
  }
}

QuantFn block_quantizer(DType t) {
  switch (t) {
    case DType::Q4_0: return quant::quant_q4_0;
    case DType::Q4_1: return quant::quant_q4_1;
    case DType::Q5_0: return quant::quant_q5_0;
    case DType::Q5_1: return quant::quant_q5_1;
    case DType::Q8_0: return quant::quant_q8_0;
    case DType::Q4_K: return quant::quant_q4_k;
    case DType::Q5_K: return quant::quant_q5_k;
    case DType::Q6_K: return quant::quant_q6_k;
    default: return nullptr;
  }
}

bool is_float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

int64_t block_count(DType t, int64_t n, const char* op) {
  int64_t be = dtype_info(t).block_elems;
  MF_CHECK(n >= 0 && n % be == 0, op, ": ", n, " elements is not a multiple of the ",
           dtype_name(t), " block size ", be);
  return n / be;
}

}  // namespace

bool can_dequantize(DType t) { return is_float_type(t) || block_dequantizer(t) != nullptr; }
bool can_quantize(DType t) { return is_float_type(t) || block_quantizer(t) != nullptr; }

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  int64_t nb = block_count(t, n, "dequantize_row");
  const auto* s = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32:
      if (n) std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = quant::load_f16(s + 2 * i);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    default: break;
  }
  DequantFn fn = block_dequantizer(t);
  MF_CHECK(fn, "dequantize_row: no dequantizer for dtype ", dtype_name(t));
  fn(s, dst, nb);
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  int64_t nb = block_count(t, n, "quantize_row");
  auto* d = static_cast<uint8_t*>(dst);
  switch (t) {
    case DType::F32:
      if (n) std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::F16: {
      int64_t i = 0;
#if defined(__F16C__)
      // The hardware conversion rounds to nearest even as store_f16 does; only NaN differs (its
      // payload), so a group of 8 with a NaN takes the scalar path.
      for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(src + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0) break;
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 2 * i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
      }
#endif
      for (; i < n; ++i) quant::store_f16(d + 2 * i, src[i]);
      return;
    }
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    default: break;
  }
  QuantFn fn = block_quantizer(t);
  MF_CHECK(fn, "quantize_row: no quantizer for dtype ", dtype_name(t),
           " (supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K)");
  // Blocks are independent and the K-quants' scale search tries dozens of candidates per
  // sub-block: split large rows into pieces of whole blocks over the threads (the same bytes as
  // serially).
  const int64_t block_elems = dtype_info(t).block_elems, block_bytes = dtype_info(t).block_bytes;
  parallel_ranges(nb, 64, [&](int64_t first, int64_t end) {
    fn(src + first * block_elems, d + first * block_bytes, end - first);
  });
}

namespace {
template <class T>
void widen(const Tensor& t, float* dst) {
  const T* s = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) dst[i] = float(s[i]);
}
}  // namespace

Tensor Tensor::to_f32() const {
  Tensor out = Tensor::empty(DType::F32, shape_);
  int64_t n = numel();
  if (n == 0) return out;
  float* dst = out.data<float>();
  switch (dtype_) {
    case DType::F64: widen<double>(*this, dst); return out;
    case DType::I8: widen<int8_t>(*this, dst); return out;
    case DType::I16: widen<int16_t>(*this, dst); return out;
    case DType::I32: widen<int32_t>(*this, dst); return out;
    case DType::I64: widen<int64_t>(*this, dst); return out;
    case DType::U8:
    case DType::BOOL: widen<uint8_t>(*this, dst); return out;
    default: break;
  }
  MF_CHECK(can_dequantize(dtype_), "to_f32: cannot convert dtype ", dtype_name(dtype_));
  // Chunks of whole blocks, processed in parallel: the big weight matrices dominate load time.
  const int64_t be = dtype_info(dtype_).block_elems;
  const int64_t chunk = be * std::max<int64_t>(1, 65536 / be);
  const auto* src = static_cast<const uint8_t*>(data_);
  parallel_ranges(n, chunk, [&](int64_t begin, int64_t end) {
    dequantize_row(dtype_, src + dtype_bytes(dtype_, begin), dst + begin, end - begin);
  });
  return out;
}

}  // namespace mf
