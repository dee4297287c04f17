// The order in which a training backward completes a model's gradients, as numbered parts: the
// head first (final norm, and lm_head when it is not tied), then layer L-1 down to layer 0, then
// the embedding (which a tied head shares). Part p of a model with L layers:
//   0 = head, 1 + (L - 1 - l) = layer l, L + 1 = embedding.
// A data-parallel trainer starts sending a part's gradients as soon as backward reports it done
// (StepOptions::on_grads_done), while backward goes on with the parts after it.
#pragma once
#include <string>

#include "model/config.h"

namespace mf {

inline constexpr int kHeadGradPart = 0;
inline int layer_grad_part(const ModelConfig& c, int layer) { return 1 + (c.num_layers - 1 - layer); }
inline int embedding_grad_part(const ModelConfig& c) { return c.num_layers + 1; }

// The part a trainable tensor's gradient belongs to, from its HF name. Throws mf::Error for a
// name that is in none (every trainable tensor of a decoder is in one).
int grad_part_of(const ModelConfig& c, const std::string& tensor_name);

}  // namespace mf
