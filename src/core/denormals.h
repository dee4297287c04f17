// Subnormal floats make x86 arithmetic many times slower, and only on the thread that meets
// them, so a parallel loop waits for it. Long training sequences produce them (tiny attention
// probabilities and their gradients). While a FlushDenormals lives, every OpenMP thread flushes
// subnormal results and inputs to zero (MXCSR FTZ + DAZ); values below 1.2e-38 become 0, far
// under any tolerance fp32 training has. The previous modes come back on destruction.
#pragma once
#include <omp.h>
#include <xmmintrin.h>

#include <vector>

namespace mf {

class FlushDenormals {
 public:
  FlushDenormals() : saved_(size_t(omp_get_max_threads()), 0u) {
#pragma omp parallel
    {
      const size_t t = size_t(omp_get_thread_num());
      if (t < saved_.size()) {
        saved_[t] = _mm_getcsr();
        _mm_setcsr(saved_[t] | kFtzDaz);
      }
    }
  }
  ~FlushDenormals() {
#pragma omp parallel
    {
      const size_t t = size_t(omp_get_thread_num());
      if (t < saved_.size()) _mm_setcsr(saved_[t]);
    }
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  static constexpr unsigned kFtzDaz = 0x8040;  // bit 15 flush-to-zero, bit 6 denormals-are-zero
  std::vector<unsigned> saved_;
};

}  // namespace mf
