#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/common.cuh"

namespace mf::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kVec = 8;  // bf16 per 16-byte access

unsigned grid_for(int64_t items) {
  return unsigned(std::clamp<int64_t>((items + kThreads - 1) / kThreads, 1, int64_t(1) << 20));
}

// One thread per V consecutive columns of one row (grid-stride over rows * width / V).
template <int V>
__global__ void silu_mul_kernel(const bf16* gate, const bf16* up, int64_t rows, int64_t width, int64_t in_stride,
                                bf16* out) {
  const int64_t per_row = width / V;
  const int64_t items = rows * per_row;
  for (int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; item < items;
       item += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = item / per_row;
    const int64_t c = (item - r * per_row) * V;
    const Pack<bf16, V> g = load_pack<V>(gate + r * in_stride + c);
    const Pack<bf16, V> u = load_pack<V>(up + r * in_stride + c);
    Pack<bf16, V> o;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float gf = __bfloat162float(g.v[k]);
      o.v[k] = __float2bfloat16_rn(gf / (1.0f + expf(-gf)) * __bfloat162float(u.v[k]));
    }
    store_pack<V>(out + r * width + c, o);
  }
}

template <int V>
__global__ void silu_mul_backward_kernel(const bf16* gate, const bf16* up, const bf16* dout, int64_t rows,
                                         int64_t width, int64_t in_stride, bf16* dgate, bf16* dup) {
  const int64_t per_row = width / V;
  const int64_t items = rows * per_row;
  for (int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; item < items;
       item += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = item / per_row;
    const int64_t c = (item - r * per_row) * V;
    const int64_t in = r * in_stride + c;
    const Pack<bf16, V> g = load_pack<V>(gate + in);
    const Pack<bf16, V> u = load_pack<V>(up + in);
    const Pack<bf16, V> d = load_pack<V>(dout + r * width + c);
    Pack<bf16, V> dg, du;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float gf = __bfloat162float(g.v[k]), uf = __bfloat162float(u.v[k]), df = __bfloat162float(d.v[k]);
      const float s = 1.0f / (1.0f + expf(-gf));
      dg.v[k] = __float2bfloat16_rn(df * uf * s * (1.0f + gf * (1.0f - s)));
      du.v[k] = __float2bfloat16_rn(df * gf * s);
    }
    store_pack<V>(dgate + in, dg);
    store_pack<V>(dup + in, du);
  }
}

void check_shape(int64_t rows, int64_t width, int64_t in_stride, const char* op) {
  MF_CHECK(rows >= 0 && width >= 0 && in_stride >= width, op, ": bad shape rows=", rows, " width=", width,
           " in_stride=", in_stride);
}

}  // namespace

void silu_mul(const bf16* gate, const bf16* up, int64_t rows, int64_t width, int64_t in_stride, bf16* out,
              cudaStream_t stream) {
  check_shape(rows, width, in_stride, "silu_mul");
  if (rows == 0 || width == 0) return;
  const bool vec = width % kVec == 0 && in_stride % kVec == 0 && aligned(gate, 16) && aligned(up, 16) &&
                   aligned(out, 16);
  if (vec)
    silu_mul_kernel<kVec><<<grid_for(rows * (width / kVec)), kThreads, 0, stream>>>(gate, up, rows, width,
                                                                                      in_stride, out);
  else
    silu_mul_kernel<1><<<grid_for(rows * width), kThreads, 0, stream>>>(gate, up, rows, width, in_stride, out);
  check_launch("silu_mul");
}

void silu_mul_backward(const bf16* gate, const bf16* up, const bf16* dout, int64_t rows, int64_t width,
                       int64_t in_stride, bf16* dgate, bf16* dup, cudaStream_t stream) {
  check_shape(rows, width, in_stride, "silu_mul_backward");
  if (rows == 0 || width == 0) return;
  const bool vec = width % kVec == 0 && in_stride % kVec == 0 && aligned(gate, 16) && aligned(up, 16) &&
                   aligned(dout, 16) && aligned(dgate, 16) && aligned(dup, 16);
  if (vec)
    silu_mul_backward_kernel<kVec><<<grid_for(rows * (width / kVec)), kThreads, 0, stream>>>(
        gate, up, dout, rows, width, in_stride, dgate, dup);
  else
    silu_mul_backward_kernel<1><<<grid_for(rows * width), kThreads, 0, stream>>>(gate, up, dout, rows, width,
                                                                                  in_stride, dgate, dup);
  check_launch("silu_mul_backward");
}

}  // namespace mf::cuda
