// Row-wise softmax (fp32).
#pragma once
#include <cstdint>

namespace mf {

// In place, numerically stable (subtracts the row max). A row of all -inf becomes all 0.
void softmax_rows(float* x, int64_t rows, int64_t cols);

// One row; the building block shared with attention and routing.
void softmax_row(float* x, int64_t cols);

}  // namespace mf
