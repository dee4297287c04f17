// The LM head's loss: softmax cross-entropy over the vocabulary, with masked positions, and its
// gradient with respect to the logits, in one pass (forward and backward side by side).
#pragma once
#include <cstdint>

namespace mf {

struct CrossEntropySums {
  double loss_sum = 0;  // sum over counted rows of -log softmax(logits)[target]
  int64_t counted = 0;  // rows whose target is >= 0
};

// logits: [rows, vocab]; targets: [rows], a negative target marks a row that is not counted
// (prompt tokens, padding). Returns the summed loss and the count; the caller divides, so that
// one normaliser can span several micro-batches of gradient accumulation.
// If dlogits is non-null it receives grad_scale * (softmax(logits) - onehot(target)) for counted
// rows and zeros for the others (written, not accumulated; may alias logits).
// Throws mf::Error naming the row for a target >= vocab.
CrossEntropySums cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                               float grad_scale, float* dlogits);

}  // namespace mf
