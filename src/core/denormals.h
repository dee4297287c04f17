// Subnormal floats make x86 arithmetic many times slower, and only on the thread that meets
// them, so a parallel loop waits for it. Long training sequences produce them (tiny attention
// probabilities and their gradients). While a FlushDenormals lives, the calling thread flushes
// subnormal results and inputs to zero (MXCSR FTZ + DAZ), and so does every loop it runs on the
// work pool (whose threads take the caller's MXCSR for each loop); values below 1.2e-38 become 0,
// far under any tolerance fp32 training has. The previous modes come back on destruction.
#pragma once
#include <xmmintrin.h>

namespace mf {

class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtzDaz); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  static constexpr unsigned kFtzDaz = 0x8040;  // bit 15 flush-to-zero, bit 6 denormals-are-zero
  unsigned saved_;
};

}  // namespace mf
