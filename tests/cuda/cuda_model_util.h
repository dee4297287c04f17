// Tiny models for comparing the CUDA models with the CPU ones. The GPU computes activations in
// bf16, so a router choice between two experts whose logits differ by less than that rounding
// can go another way than on the CPU, after which the two runs are not comparable. These
// weights make every routing decision clear-cut: each token's embedding is built from two of
// E expert directions (3 parts of one, 2 of another), and each router row reads one direction,
// so the router's top choices differ by a large fraction of the logits' size, far above the
// bf16 error (~0.5%), in every layer (attention and FFN add only small changes to the stream).
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/cuda/device.h"
#include "model/init.h"
#include "model/tensor_names.h"

namespace mf::cuda::testing {

inline float round_bf16(float x) { return float_from_bf16_bits(bf16_bits_from_float(x)); }

// Random weights (std 0.05) with clear-cut routing as above, every value rounded to bf16 so
// that the CPU starts from exactly what the GPU holds.
inline ModelWeights clear_routing_weights(const ModelConfig& c, uint64_t seed) {
  ModelWeights w = init_random_weights(c, seed, 0.05f);
  const int64_t H = c.hidden_size;
  if (c.is_moe()) {
    const int E = c.num_experts;
    Rng rng(seed + 1000);
    std::vector<std::vector<float>> dir(static_cast<size_t>(E), std::vector<float>(static_cast<size_t>(H)));
    // Orthogonal directions of equal length (|d|^2 = H, elements of size ~1), so that a
    // token's two directions give router logits in the ratio 3 : 2 exactly, up to the noise.
    for (size_t e = 0; e < dir.size(); ++e) {
      for (auto& x : dir[e]) x = rng.normal();
      for (size_t f = 0; f < e; ++f) {
        double dot = 0;
        for (int64_t i = 0; i < H; ++i) dot += double(dir[e][size_t(i)]) * dir[f][size_t(i)];
        for (int64_t i = 0; i < H; ++i) dir[e][size_t(i)] -= float(dot / double(H)) * dir[f][size_t(i)];
      }
      double norm2 = 0;
      for (float x : dir[e]) norm2 += double(x) * x;
      for (auto& x : dir[e]) x *= float(std::sqrt(double(H) / norm2));
    }
    std::vector<float> embed(size_t(c.vocab_size * H));
    for (int t = 0; t < c.vocab_size; ++t) {
      const int a = t % E, b = (a + 1 + (t / E) % (E - 1)) % E;
      for (int64_t i = 0; i < H; ++i)
        embed[size_t(t * H + i)] = 3.0f * dir[size_t(a)][size_t(i)] + 2.0f * dir[size_t(b)][size_t(i)] +
                                   0.1f * rng.normal();
    }
    w.tensors["model.embed_tokens.weight"] = Tensor::from_f32({c.vocab_size, H}, embed);
    // Logits of about 2.8 and 1.9 for the two directions of a token, |0.3| for the others.
    const float scale = 0.3f / std::sqrt(float(H));
    for (int l = 0; l < c.num_layers; ++l) {
      if (!c.layer_is_moe(l)) continue;
      const int El = c.experts_in_layer(l);
      std::vector<float> router(size_t(El * H));
      for (int e = 0; e < El; ++e)
        for (int64_t i = 0; i < H; ++i) router[size_t(e * H + i)] = scale * dir[size_t(e % E)][size_t(i)];
      w.tensors[moe_names(c, l).router()] = Tensor::from_f32({El, H}, router);
      if (c.routing.policy == RouterPolicy::NoisyTopK) {
        // Noise scale softplus(u) ~ softplus(-4) ~ 0.02 for every token: the noise path runs
        // (and is differentiated) without moving any selection across a margin.
        std::vector<float> noise(size_t(El * H), 0.0f);
        const float s = -4.0f * 3.6f / (5.0f * float(H));
        for (int e = 0; e < El; ++e)
          for (const auto& d : dir)
            for (int64_t i = 0; i < H; ++i) noise[size_t(e * H + i)] += s * d[size_t(i)];
        w.tensors[moe_names(c, l).noise()] = Tensor::from_f32({El, H}, noise);
      }
    }
  }
  for (auto& [name, t] : w.tensors) {
    std::vector<float> v(t.data<float>(), t.data<float>() + t.numel());
    for (float& x : v) x = round_bf16(x);
    t = Tensor::from_f32(t.shape(), v);
  }
  return w;
}

}  // namespace mf::cuda::testing
