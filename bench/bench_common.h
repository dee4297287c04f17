// Helpers shared by the benchmarks: medians and the machine's streaming read bandwidth.
#pragma once
#include <immintrin.h>
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/process_stats.h"
#include "core/timer.h"

namespace mf::bench {

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// GB/s of streaming reads over a buffer of `bytes` with `threads` threads (median of passes
// after a warm-up pass). Each thread sums its own contiguous half with four independent
// accumulators so the loop is bound by loads, not by the add latency. A buffer far larger
// than the last-level cache measures DRAM; one the size of a model's weights measures what
// a decode step that streams those weights can get (on a CPU with a large L3, that is L3).
inline double measure_read_bandwidth_gbs(int threads, size_t bytes = size_t(1) << 30) {
  const size_t n = bytes / sizeof(float) / 64 * 64;
  // 64-byte aligned for the aligned vector loads.
  auto buf = std::make_unique_for_overwrite<float[]>(n + 16);
  float* data = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.get()) + 63) & ~uintptr_t(63));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < n; ++i) data[i] = float(i & 1023);
  // Enough passes that small buffers are timed over >= ~50 ms in total.
  const int passes = int(std::clamp<size_t>((size_t(1) << 30) / std::max<size_t>(bytes, 1), 5, 200));
  std::vector<double> rates;
  volatile float sink = 0;
  for (int pass = 0; pass <= passes; ++pass) {
    Timer t;
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const size_t per = n / size_t(omp_get_num_threads()) / 64 * 64;
      const size_t begin = per * size_t(omp_get_thread_num());
      const size_t end = omp_get_thread_num() == omp_get_num_threads() - 1 ? n : begin + per;
#if defined(__AVX512F__)
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t i = begin; i < end; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(data + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(data + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(data + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(data + i + 48));
      }
      alignas(64) float lanes[16];  // (GCC 12 warns falsely inside _mm512_reduce_add_ps)
      _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
      for (float v : lanes) total += v;
#else
      float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (size_t i = begin; i < end; i += 4) {
        a0 += data[i];
        a1 += data[i + 1];
        a2 += data[i + 2];
        a3 += data[i + 3];
      }
      total += a0 + a1 + a2 + a3;
#endif
    }
    double s = t.seconds();
    sink = sink + total;
    if (pass) rates.push_back(double(n * sizeof(float)) / s / 1e9);
  }
  return median(rates);
}

// Runs measure_read_bandwidth_gbs in a child process so that its buffer never counts in
// this process's peak RSS (the benchmarks report peak RSS of the model alone).
inline double measure_read_bandwidth_isolated(int threads, size_t bytes) {
  int fds[2];
  if (pipe(fds) != 0) return measure_read_bandwidth_gbs(threads, bytes);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const double gbs = measure_read_bandwidth_gbs(threads, bytes);
    ssize_t written = write(fds[1], &gbs, sizeof gbs);
    _exit(written == sizeof gbs ? 0 : 1);
  }
  close(fds[1]);
  double gbs = 0;
  size_t got = 0;
  while (pid > 0 && got < sizeof gbs) {
    const ssize_t n = read(fds[0], reinterpret_cast<char*>(&gbs) + got, sizeof gbs - got);
    if (n > 0) got += size_t(n);
    else if (n < 0 && errno == EINTR) continue;
    else break;
  }
  close(fds[0]);
  if (pid > 0) waitpid(pid, nullptr, 0);
  if (got == sizeof gbs) return gbs;
  // Measuring here instead would put the probe's buffer into this process's peak RSS.
  std::fprintf(stderr, "bandwidth probe failed (%s); reporting 0\n", pid < 0 ? "fork" : "child");
  return 0.0;
}

}  // namespace mf::bench
