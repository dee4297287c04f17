// Internal: the small-M (decode) path of linear(): y[r, n] = x[r] . W[n] for r < M <= 8.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace mf::detail {

// w: N rows of K elements of format t, packed (row stride dtype_bytes(t, K)).
// y: [M, N]. Parallel over chunks of output rows, on the work pool.
void gemv_rows(const float* x, int64_t M, int64_t K, DType t, const void* w, int64_t N, float* y);

}  // namespace mf::detail
