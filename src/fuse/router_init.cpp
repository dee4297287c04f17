#include "fuse/router_init.h"

#include <cmath>

#include "core/error.h"
#include "model/tensor_names.h"
#include "core/rng.h"
#include "fuse/fuse.h"
#include "model/blocks.h"
#include "model/kv_cache.h"

namespace mf {

namespace {

Tensor& router(ModelWeights& moe, int l) {
  auto it = moe.tensors.find(mixtral_moe_names(l).router());
  MF_CHECK(it != moe.tensors.end(), moe.source, ": no router tensor '", mixtral_moe_names(l).router(), "'");
  const int64_t E = moe.config.num_experts, H = moe.config.hidden_size;
  if (it->second.dtype() != DType::F32 || it->second.shape() != Shape{E, H}) it->second = Tensor::zeros(DType::F32, {E, H});
  return it->second;
}

// One vector of H floats per layer for a prompt.
std::vector<std::vector<double>> prompt_states(Transformer& model, const Tokenizer& tok, const std::string& prompt,
                                               PromptHidden where) {
  const ModelConfig& c = model.config();
  const std::vector<int32_t> ids = encode_for_model(tok, prompt);
  MF_CHECK(!ids.empty(), "router prompts: an empty prompt");
  MF_CHECK(int(ids.size()) <= c.max_position_embeddings, "router prompts: a prompt of ", ids.size(),
           " tokens exceeds the model's ", c.max_position_embeddings, " positions");
  const int64_t T = int64_t(ids.size()), H = c.hidden_size;
  // The BOS token (when the tokenizer adds one) looks the same in every prompt: leave it out.
  const int64_t first = (tok.add_bos && T > 1) ? 1 : 0;
  if (where == PromptHidden::token_embedding_mean) {
    const auto it = model.weights().tensors.find(kEmbedTokensName);
    MF_CHECK(it != model.weights().tensors.end(), "router prompts: the skeleton has no '", kEmbedTokensName, "'");
    std::vector<float> rows(size_t(T * H));
    embed_tokens(it->second, ids.data(), T, rows.data());
    std::vector<double> mean(size_t(H), 0.0);
    for (int64_t t = first; t < T; ++t)
      for (int64_t i = 0; i < H; ++i) mean[size_t(i)] += rows[size_t(t * H + i)];
    for (double& v : mean) v /= double(T - first);
    return std::vector<std::vector<double>>(size_t(c.num_layers), mean);
  }
  KVCache cache(c, int(ids.size()));
  std::vector<Tensor> states;
  ForwardOptions fo;
  (where == PromptHidden::ffn_input_mean ? fo.ffn_inputs : fo.layer_inputs) = &states;
  model.forward(ids, 1, cache, fo);
  std::vector<std::vector<double>> out(size_t(c.num_layers), std::vector<double>(size_t(H), 0.0));
  for (int l = 0; l < c.num_layers; ++l) {
    const float* s = states[size_t(l)].data<float>();
    if (where == PromptHidden::layer_input_last) {
      for (int64_t i = 0; i < H; ++i) out[size_t(l)][size_t(i)] = s[(T - 1) * H + i];
      continue;
    }
    for (int64_t t = first; t < T; ++t)
      for (int64_t i = 0; i < H; ++i) out[size_t(l)][size_t(i)] += s[t * H + i];
    for (double& v : out[size_t(l)]) v /= double(T - first);
  }
  return out;
}

}  // namespace

PromptHidden prompt_hidden_from_string(const std::string& s) {
  if (s == "ffn_input") return PromptHidden::ffn_input_mean;
  if (s == "layer_input_last") return PromptHidden::layer_input_last;
  if (s == "embedding") return PromptHidden::token_embedding_mean;
  fail("router hidden state '", s, "' is not one of ffn_input, layer_input_last, embedding");
}

const char* to_string(PromptHidden h) {
  switch (h) {
    case PromptHidden::ffn_input_mean: return "ffn_input";
    case PromptHidden::layer_input_last: return "layer_input_last";
    case PromptHidden::token_embedding_mean: return "embedding";
  }
  return "?";
}

void init_routers_random(ModelWeights& moe, uint64_t seed, float std) {
  Rng rng(seed);
  for (int l = 0; l < moe.config.num_layers; ++l) {
    Tensor& r = router(moe, l);
    float* p = r.data<float>();
    for (int64_t i = 0; i < r.numel(); ++i) p[i] = std * rng.normal();
  }
}

void init_routers_uniform(ModelWeights& moe, uint64_t seed, float bound) {
  MF_CHECK(bound >= 0, "router init: the uniform bound must be >= 0");
  if (bound == 0) bound = 1.0f / std::sqrt(float(moe.config.hidden_size));
  Rng rng(seed);
  for (int l = 0; l < moe.config.num_layers; ++l) {
    Tensor& r = router(moe, l);
    float* p = r.data<float>();
    for (int64_t i = 0; i < r.numel(); ++i) p[i] = bound * (2.0f * rng.uniform() - 1.0f);
  }
}

void init_routers_zero(ModelWeights& moe) {
  for (int l = 0; l < moe.config.num_layers; ++l) {
    Tensor& r = router(moe, l);
    std::fill_n(r.data<float>(), r.numel(), 0.0f);
  }
}

void init_routers_from_prompts(ModelWeights& moe, Transformer& skeleton, const Tokenizer& tok,
                               const std::vector<ExpertPrompts>& prompts, PromptHidden where, float temperature) {
  const ModelConfig& c = moe.config;
  const int E = c.num_experts, L = c.num_layers;
  const int64_t H = c.hidden_size;
  MF_CHECK(int(prompts.size()) == E, "router prompts: ", prompts.size(), " prompt sets for ", E, " experts");
  MF_CHECK(skeleton.config().hidden_size == H && skeleton.config().num_layers == L,
           "router prompts: the skeleton's shape does not match the MoE");
  MF_CHECK(temperature > 0, "router prompts: temperature must be > 0");
  // Per expert and layer: the mean state of its positive prompts and of its negative ones.
  const std::vector<std::vector<double>> zero_layers(size_t(L), std::vector<double>(size_t(H), 0.0));
  std::vector<std::vector<std::vector<double>>> pos(static_cast<size_t>(E), zero_layers), neg = pos;
  std::vector<std::vector<std::vector<double>>> positives;  // every positive prompt: [layer][H]
  auto accumulate = [&](std::vector<std::vector<double>>& into, const std::vector<std::vector<double>>& s, double w) {
    for (int l = 0; l < L; ++l)
      for (int64_t i = 0; i < H; ++i) into[size_t(l)][size_t(i)] += w * s[size_t(l)][size_t(i)];
  };
  for (int e = 0; e < E; ++e) {
    const ExpertPrompts& p = prompts[size_t(e)];
    MF_CHECK(!p.positive.empty(), "router prompts: expert ", e,
             c.expert_names.size() > size_t(e) ? " (" + c.expert_names[size_t(e)] + ")" : std::string(),
             " has no positive prompt");
    for (const std::string& text : p.positive) {
      positives.push_back(prompt_states(skeleton, tok, text, where));
      accumulate(pos[size_t(e)], positives.back(), 1.0 / double(p.positive.size()));
    }
    for (const std::string& text : p.negative)
      accumulate(neg[size_t(e)], prompt_states(skeleton, tok, text, where), 1.0 / double(p.negative.size()));
  }
  // Every hidden state shares a large common component. Measured from the mean of all experts'
  // prompts, each expert's direction keeps only what sets its prompts apart (and a negative
  // set moves it away from what sets those apart).
  std::vector<std::vector<double>> centre = zero_layers;
  for (int e = 0; e < E; ++e) accumulate(centre, pos[size_t(e)], 1.0 / E);
  for (int l = 0; l < L; ++l) {
    std::vector<std::vector<double>> rows(static_cast<size_t>(E), std::vector<double>(size_t(H), 0.0));
    for (int e = 0; e < E; ++e) {
      const bool has_negative = !prompts[size_t(e)].negative.empty();
      double norm = 0;
      for (int64_t i = 0; i < H; ++i) {
        const double g = centre[size_t(l)][size_t(i)];
        double v = pos[size_t(e)][size_t(l)][size_t(i)] - g;
        if (has_negative) v -= neg[size_t(e)][size_t(l)][size_t(i)] - g;
        rows[size_t(e)][size_t(i)] = v;
        norm += v * v;
      }
      norm = std::sqrt(norm);
      for (double& v : rows[size_t(e)]) v = norm > 0 ? v / norm : 0.0;
    }
    // Spread of the logits the positive prompts would get, std across experts, averaged.
    double spread = 0;
    for (const auto& s : positives) {
      std::vector<double> z(size_t(E), 0.0);
      double zm = 0;
      for (int e = 0; e < E; ++e) {
        for (int64_t i = 0; i < H; ++i) z[size_t(e)] += rows[size_t(e)][size_t(i)] * s[size_t(l)][size_t(i)];
        zm += z[size_t(e)] / E;
      }
      double var = 0;
      for (double v : z) var += (v - zm) * (v - zm) / E;
      spread += std::sqrt(var) / double(positives.size());
    }
    const double scale = spread > 0 ? temperature / spread : 1.0;
    float* w = router(moe, l).data<float>();
    for (int e = 0; e < E; ++e)
      for (int64_t i = 0; i < H; ++i) w[int64_t(e) * H + i] = float(rows[size_t(e)][size_t(i)] * scale);
  }
}

}  // namespace mf
