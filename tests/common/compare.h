// Helpers shared by the tests: numeric comparison ("max relative error" with a floor so that
// entries near zero are judged against the array's typical magnitude), fixture files, and
// where the real SmolLM2 model is cached.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <vector>
#include <sstream>
#include <string>

namespace mf::test {

struct Mismatch {
  double max_rel = 0;   // max over i of |got-want| / (|want| + floor)
  double max_abs = 0;   // max over i of |got-want|
  int64_t worst = -1;   // index of the max_rel entry
  float got = 0, want = 0;
  std::string str() const {
    std::ostringstream s;
    s << "max_rel=" << max_rel << " max_abs=" << max_abs << " at [" << worst << "] got=" << got
      << " want=" << want;
    return s.str();
  }
};

// floor = floor_frac * rms(want): 1e-2 means an entry 100x smaller than typical is compared
// with absolute error ~ rel_tol * rms/100. NaN anywhere is an infinite error.
inline Mismatch compare(const float* got, const float* want, int64_t n, double floor_frac = 1e-2) {
  double sumsq = 0;
  for (int64_t i = 0; i < n; ++i) sumsq += double(want[i]) * want[i];
  const double floor = floor_frac * std::sqrt(sumsq / double(std::max<int64_t>(n, 1))) + 1e-30;
  Mismatch m;
  for (int64_t i = 0; i < n; ++i) {
    double diff = std::fabs(double(got[i]) - double(want[i]));
    if (std::isnan(got[i]) != std::isnan(want[i])) diff = INFINITY;
    double rel = diff / (std::fabs(double(want[i])) + floor);
    m.max_abs = std::max(m.max_abs, diff);
    if (rel > m.max_rel || m.worst < 0) {
      m.max_rel = rel;
      m.worst = i;
      m.got = got[i];
      m.want = want[i];
    }
  }
  return m;
}

// max |got - want| / max |want|: the error relative to the scale of the whole reference (for
// logits, where the largest entries are the ones that matter).
inline double max_err_over_scale(const float* got, const float* want, size_t n) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    err = std::max(err, double(std::fabs(got[i] - want[i])));
    scale = std::max(scale, double(std::fabs(want[i])));
  }
  return err / std::max(scale, 1e-30);
}

// A raw little-endian float32 file written by a fixture generator (empty if unreadable).
inline std::vector<float> read_f32_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::vector<float> v(size_t(in.tellg()) / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  return v;
}

// Where scripts/fetch-smollm2.sh caches the real model ($MOEFORGE_CACHE overrides the folder).
inline std::string smollm2_gguf_path() {
  const char* cache = std::getenv("MOEFORGE_CACHE");
  const char* home = std::getenv("HOME");
  const std::string root = cache ? cache : std::string(home ? home : "") + "/.cache/moeforge";
  return root + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace mf::test
