#include "core/error.h"
#include "kernels/cpu/quant.h"
#include "model/blocks.h"

namespace mf {

void embed_tokens(const Tensor& embed, const int32_t* ids, int64_t n, float* x) {
  const int64_t vocab = embed.dim(0), H = embed.dim(1);
  const size_t row_bytes = dtype_bytes(embed.dtype(), H);
  const auto* base = static_cast<const uint8_t*>(embed.raw());
  for (int64_t i = 0; i < n; ++i) {
    MF_CHECK(ids[i] >= 0 && ids[i] < vocab, "token id ", ids[i], " at position ", i, " is outside the vocabulary [0, ",
             vocab, ")");
    dequantize_row(embed.dtype(), base + size_t(ids[i]) * row_bytes, x + i * H, H);
  }
}

void embed_tokens_backward(const int32_t* ids, int64_t n, const float* dx, int64_t H, int64_t vocab, float* dtable) {
  for (int64_t i = 0; i < n; ++i) {
    MF_CHECK(ids[i] >= 0 && ids[i] < vocab, "token id ", ids[i], " at position ", i, " is outside the vocabulary [0, ",
             vocab, ")");
    float* row = dtable + int64_t(ids[i]) * H;
    const float* g = dx + i * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) row[j] += g[j];
  }
}

}  // namespace mf
