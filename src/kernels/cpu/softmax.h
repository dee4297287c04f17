// Row-wise softmax (fp32).
#pragma once
#include <cstdint>

namespace mf {

// In place, numerically stable (subtracts the row max). A row of all -inf becomes all 0.
void softmax_rows(float* x, int64_t rows, int64_t cols);

// One row; the building block shared with attention and routing.
void softmax_row(float* x, int64_t cols);
// The unnormalised half of softmax_row: x[i] = exp(x[i] - max), returns their sum and sets *max_out
// (a row of -inf becomes zeros, sum 0). Attention over key splits merges these partial sums.
float exp_minus_max(float* x, int64_t cols, float* max_out);

// p = softmax(x) in double precision for short rows (router logits over a few dozen experts,
// where the routing and its gradients are computed); returns logsumexp(x).
double softmax_row_f64(const float* x, int64_t n, double* p);

// dx += the softmax backward of dp at probabilities p: p * (dp - sum(p * dp)).
void softmax_row_f64_backward(const double* p, const double* dp, int64_t n, float* dx);

}  // namespace mf
