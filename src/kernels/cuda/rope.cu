#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rope.h"

namespace mf::cuda {

namespace {

// One thread rotates V pairs (i .. i+V-1 with i+half .. i+half+V-1) of one (token, head).
// direction +1: forward; -1: backward (sin negated), exactly as the CPU rotate_head.
template <int V>
__global__ void rope_kernel(bf16* x, int64_t tokens, int heads, int half, const int32_t* positions,
                            const float* cos_table, const float* sin_table, int max_positions, float direction) {
  const int64_t per_head = half / V;
  const int64_t items = tokens * heads * per_head;
  for (int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; item < items;
       item += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token_head = item / per_head;
    const int i = int(item - token_head * per_head) * V;
    const int32_t pos = positions[token_head / heads];
    if (pos < 0 || pos >= max_positions) continue;
    bf16* head = x + token_head * 2 * half;
    const Pack<bf16, V> a = load_pack<V>(head + i);
    const Pack<bf16, V> b = load_pack<V>(head + i + half);
    const Pack<float, V> c = load_pack<V>(cos_table + int64_t(pos) * half + i);
    const Pack<float, V> s = load_pack<V>(sin_table + int64_t(pos) * half + i);
    Pack<bf16, V> lo, hi;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float af = __bfloat162float(a.v[k]), bf = __bfloat162float(b.v[k]);
      const float sk = direction * s.v[k];
      lo.v[k] = __float2bfloat16_rn(af * c.v[k] - bf * sk);
      hi.v[k] = __float2bfloat16_rn(bf * c.v[k] + af * sk);
    }
    store_pack<V>(head + i, lo);
    store_pack<V>(head + i + half, hi);
  }
}

void rotate(bf16* x, int64_t tokens, int heads, int head_dim, const int32_t* positions, const DeviceRopeTable& table,
            float direction, cudaStream_t stream, const char* op) {
  MF_CHECK(tokens >= 0 && heads > 0, op, ": bad shape [", tokens, ", ", heads, "]");
  MF_CHECK(table.head_dim() > 0, op, ": the rope table is empty");
  MF_CHECK(head_dim == table.head_dim(), op, ": head_dim ", head_dim, " but the rope table has ", table.head_dim());
  if (tokens == 0) return;
  const int half = head_dim / 2;
  constexpr int kThreads = 256;
  auto launch = [&](auto vec) {
    constexpr int V = decltype(vec)::value;
    const int64_t items = tokens * heads * (half / V);
    const unsigned blocks = unsigned(std::min<int64_t>((items + kThreads - 1) / kThreads, int64_t(1) << 20));
    rope_kernel<V><<<blocks, kThreads, 0, stream>>>(x, tokens, heads, half, positions, table.cos(), table.sin(),
                                                    table.max_positions(), direction);
  };
  // cos/sin rows start at multiples of half floats (cudaMalloc: 256-byte aligned base).
  if (half % 8 == 0 && aligned(x, 16))
    launch(std::integral_constant<int, 8>{});
  else if (half % 2 == 0 && aligned(x, 4))
    launch(std::integral_constant<int, 2>{});
  else
    launch(std::integral_constant<int, 1>{});
  check_launch(op);
}

}  // namespace

DeviceRopeTable::DeviceRopeTable(const RopeTable& host)
    : head_dim_(host.head_dim()), max_positions_(host.max_positions()) {
  const int half = head_dim_ / 2;
  std::vector<float> c(size_t(max_positions_) * size_t(half)), s(c.size());
  for (int p = 0; p < max_positions_; ++p)
    for (int i = 0; i < half; ++i) {
      c[size_t(p) * size_t(half) + size_t(i)] = host.cos(p)[i];
      s[size_t(p) * size_t(half) + size_t(i)] = host.sin(p)[i];
    }
  cos_ = DeviceBuffer(c.size() * sizeof(float), "rope cos table");
  sin_ = DeviceBuffer(s.size() * sizeof(float), "rope sin table");
  cos_.upload(c.data(), c.size() * sizeof(float));
  sin_.upload(s.data(), s.size() * sizeof(float));
}

DeviceRopeTable::DeviceRopeTable(int head_dim, int max_positions, double theta)
    : DeviceRopeTable(RopeTable(head_dim, max_positions, theta)) {}

void rope_apply(bf16* x, int64_t tokens, int heads, int head_dim, const int32_t* positions,
                const DeviceRopeTable& table, cudaStream_t stream) {
  rotate(x, tokens, heads, head_dim, positions, table, 1.0f, stream, "rope_apply");
}

void rope_backward(bf16* dx, int64_t tokens, int heads, int head_dim, const int32_t* positions,
                   const DeviceRopeTable& table, cudaStream_t stream) {
  rotate(dx, tokens, heads, head_dim, positions, table, -1.0f, stream, "rope_backward");
}

}  // namespace mf::cuda
