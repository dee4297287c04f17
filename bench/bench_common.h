// Helpers shared by the benchmarks: medians and the machine's streaming read bandwidth.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/timer.h"

namespace mf::bench {

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// GB/s of a vectorisable sum over a buffer far larger than the last-level cache (1 GiB),
// with `threads` threads; median of 5 passes after one warm-up pass.
inline double measure_read_bandwidth_gbs(int threads, size_t bytes = size_t(1) << 30) {
  const size_t n = bytes / sizeof(float);
  auto buf = std::make_unique_for_overwrite<float[]>(n);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = float(i & 1023);
  std::vector<double> rates;
  volatile float sink = 0;
  for (int pass = 0; pass < 6; ++pass) {
    Timer t;
    float total = 0;
#pragma omp parallel for simd num_threads(threads) schedule(static) reduction(+ : total)
    for (size_t i = 0; i < n; ++i) total += buf[i];
    double s = t.seconds();
    sink = sink + total;
    if (pass) rates.push_back(double(bytes) / s / 1e9);
  }
  return median(rates);
}

}  // namespace mf::bench
