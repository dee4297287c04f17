// Micro benchmark of `linear` on SmolLM2-135M's shapes, per weight format and row count:
// median time, GFLOP/s and the weight bytes streamed per second (the figure to hold against
// the machine's read bandwidth for decode, M = 1). One JSON line per (format, shape, M).
//   bench_linear [--threads 2] [--repeats 50] [--formats F32,Q8_0,Q4_1] [--rows 1,4,256]
//                [--dot exact,packed,int8]   (packed: Q4_0/Q4_1/Q8_0 at M <= 64, int8 at M <= 256)
#include <omp.h>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant.h"

namespace {

struct Shape2 {
  const char* name;
  int64_t N, K;
};

// Every matrix shape of a SmolLM2-135M layer, plus the tied LM head.
constexpr Shape2 kShapes[] = {
    {"q_proj", 576, 576}, {"k_proj", 192, 576}, {"gate_proj", 1536, 576},
    {"down_proj", 576, 1536}, {"lm_head", 49152, 576},
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

mf::Tensor random_weight(mf::DType dtype, int64_t N, int64_t K, mf::Rng& rng) {
  std::vector<float> w(size_t(N * K));
  for (auto& v : w) v = float(rng.normal()) * 0.05f;
  mf::Tensor f32 = mf::Tensor::from_f32({N, K}, w);
  if (dtype == mf::DType::F32) return f32;
  mf::Tensor q = mf::Tensor::empty(dtype, {N, K});
  for (int64_t n = 0; n < N; ++n)
    mf::quantize_row(dtype, w.data() + n * K, static_cast<uint8_t*>(q.raw()) + mf::dtype_bytes(dtype, n * K), K);
  return q;
}

}  // namespace

int main(int argc, char** argv) try {
  int threads = 2, repeats = 50;
  std::vector<std::string> formats = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"};
  std::vector<int64_t> rows = {1, 4, 256};
  std::vector<std::string> dots = {"exact", "packed", "int8"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      MF_CHECK(i + 1 < argc, "missing value after ", a);
      return argv[++i];
    };
    if (a == "--threads") threads = std::stoi(next());
    else if (a == "--repeats") repeats = std::stoi(next());
    else if (a == "--formats") formats = split(next());
    else if (a == "--dot") dots = split(next());
    else if (a == "--rows") {
      rows.clear();
      for (const auto& r : split(next())) rows.push_back(std::stoll(r));
    } else if (a == "--help" || a == "-h") {
      std::puts("usage: bench_linear [--threads 2] [--repeats 50] [--formats F32,Q8_0,Q4_1] [--rows 1,4,256] [--dot exact,packed,int8]");
      return 0;
    } else mf::fail("unknown argument ", a);
  }
  omp_set_num_threads(threads);
  mf::Rng rng(7);
  for (const auto& fname : formats) {
    const mf::DType dtype = mf::parse_dtype(fname);
    for (const Shape2& s : kShapes) {
      const mf::Tensor w = random_weight(dtype, s.N, s.K, rng);
      for (int64_t M : rows)
        for (const auto& dot_name : dots) {
          // The packed paths exist for small M and Q4_0/Q4_1/Q8_0 (with AVX-512 VNNI).
          const bool packed = dot_name != "exact";
          if (packed && (M > (dot_name == "int8" ? mf::PackedQuantMatrix::kMaxRows : mf::kLinearPackedMaxRows) ||
                         !mf::PackedQuantMatrix::supports(w)))
            continue;
          mf::LinearWeight lw(w);
          if (packed) lw.packed = std::make_shared<const mf::PackedQuantMatrix>(w);
          if (dot_name == "int8") lw.activations = mf::DecodeActivations::int8;
          std::vector<float> x(size_t(M * s.K)), y(size_t(M * s.N));
          for (auto& v : x) v = float(rng.normal());
          // Fewer repeats for the big prefill GEMMs keep the run short without losing the median.
          const int reps = M > 8 ? std::max(5, repeats / 10) : repeats;
          std::vector<double> secs;
          for (int r = 0; r < reps + 2; ++r) {
            mf::Timer t;
            mf::linear(x.data(), M, s.K, lw, nullptr, y.data());
            if (r >= 2) secs.push_back(t.seconds());
          }
          const double sec = mf::bench::median(secs);
          std::printf("{\"bench\":\"linear\",\"format\":\"%s\",\"dot\":\"%s\",\"matrix\":\"%s\",\"N\":%lld,"
                      "\"K\":%lld,\"M\":%lld,\"threads\":%d,\"us\":%.2f,\"gflop_s\":%.2f,\"weight_gb_s\":%.2f}\n",
                      fname.c_str(), dot_name.c_str(), s.name, (long long)s.N, (long long)s.K, (long long)M, threads,
                      sec * 1e6, 2.0 * double(M * s.N * s.K) / sec / 1e9, double(w.nbytes()) / sec / 1e9);
        }
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_linear: %s\n", e.what());
  return 1;
}
