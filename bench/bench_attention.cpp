// Micro benchmark of a server's decode attention: one query per sequence for B sequences, each at
// the same depth, over the 30 layers of SmolLM2-135M (9 query heads, 3 kv heads, head_dim 64),
// every (layer, sequence) reading its own cache, so the keys and values stream from memory as in
// a real step. Per KV cache element type and layout: the median time of one step's attention and
// the cache bytes it read per second. One JSON line per (type, layout, depth).
//   bench_attention [--batch 16] [--depths 100,400] [--types F32,F16,BF16] [--layouts heads,rows]
//                   [--repeats 20]
// Layouts: `heads` is KVCache's [kv head, position, head_dim]; `rows` keeps every kv head of a
// position together ([position, kv head, head_dim]), the layout it had before.
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/error.h"
#include "core/timer.h"
#include "core/work_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/quant.h"

namespace {

constexpr int kLayers = 30, kHeads = 9, kKvHeads = 3, kHeadDim = 64;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  int batch = 16, repeats = 20;
  std::vector<int64_t> depths = {100, 400};
  std::vector<std::string> types = {"F32", "F16", "BF16"}, layouts = {"heads", "rows"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      MF_CHECK(i + 1 < argc, "missing value after ", a);
      return argv[++i];
    };
    if (a == "--batch") batch = std::stoi(next());
    else if (a == "--repeats") repeats = std::stoi(next());
    else if (a == "--types") types = split(next());
    else if (a == "--layouts") layouts = split(next());
    else if (a == "--depths") {
      depths.clear();
      for (const auto& d : split(next())) depths.push_back(std::stoll(d));
    } else if (a == "--help" || a == "-h") {
      std::puts("usage: bench_attention [--batch 16] [--depths 100,400] [--types F32,F16,BF16] [--layouts heads,rows] "
                "[--repeats 20]");
      return 0;
    } else mf::fail("unknown argument ", a);
  }
  MF_CHECK(batch >= 1 && repeats >= 1, "--batch and --repeats must be >= 1");
  const int64_t kv_dim = int64_t(kKvHeads) * kHeadDim;
  for (const int64_t depth : depths) {
    MF_CHECK(depth >= 1, "depths must be >= 1");
    // One fp32 source of `depth` positions, rounded into every (layer, sequence) cache.
    std::vector<float> source(size_t(depth * kv_dim));
    for (size_t i = 0; i < source.size(); ++i) source[i] = float((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    std::vector<float> q(size_t(batch) * kHeads * kHeadDim, 0.01f), out(q.size());
    for (const std::string& type_name : types) {
      const mf::DType type = mf::parse_dtype(type_name);
      MF_CHECK(mf::is_cache_type(type), type_name, " is not a KV cache type");
      const size_t elem = mf::dtype_bytes(type, 1), per_cache = size_t(depth * kv_dim) * elem;
      std::vector<uint8_t> keys(per_cache * size_t(kLayers * batch)), values(keys.size());
      for (size_t c = 0; c < size_t(kLayers * batch); ++c) {
        mf::quantize_row(type, source.data(), keys.data() + c * per_cache, depth * kv_dim);
        mf::quantize_row(type, source.data(), values.data() + c * per_cache, depth * kv_dim);
      }
      for (const std::string& layout : layouts) {
        MF_CHECK(layout == "heads" || layout == "rows", "--layouts takes heads and rows, not ", layout);
        // The same bytes read either way; only the order of positions and heads differs.
        const int64_t kv_stride = layout == "heads" ? kHeadDim : kv_dim;
        const int64_t head_stride = layout == "heads" ? depth * kHeadDim : kHeadDim;
        std::vector<mf::CacheRows> k(static_cast<size_t>(batch)), v(static_cast<size_t>(batch));
        std::vector<int64_t> lengths(static_cast<size_t>(batch), depth);
        std::vector<double> secs;
        for (int r = 0; r < repeats + 2; ++r) {
          mf::Timer t;
          for (int l = 0; l < kLayers; ++l) {
            for (int b = 0; b < batch; ++b) {
              const size_t at = size_t(l * batch + b) * per_cache;
              k[size_t(b)] = {keys.data() + at, type, kv_stride, head_stride};
              v[size_t(b)] = {values.data() + at, type, kv_stride, head_stride};
            }
            mf::attention_decode_batch(q.data(), k.data(), v.data(), lengths.data(), batch, kHeads, kKvHeads,
                                       kHeadDim, 0.125f, out.data());
          }
          if (r >= 2) secs.push_back(t.seconds());
        }
        const double sec = mf::bench::median(secs);
        std::printf("{\"bench\":\"attention_decode\",\"type\":\"%s\",\"layout\":\"%s\",\"batch\":%d,\"depth\":%lld,"
                    "\"layers\":%d,\"threads\":%d,\"ms_per_step\":%.3f,\"cache_gb_s\":%.2f}\n",
                    type_name.c_str(), layout.c_str(), batch, (long long)depth, kLayers, mf::parallel_threads(),
                    sec * 1e3, 2.0 * double(per_cache) * kLayers * batch / sec / 1e9);
      }
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_attention: %s\n", e.what());
  return 1;
}
