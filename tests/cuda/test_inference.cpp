// The CUDA inference model against the CPU Transformer (itself checked against PyTorch): logits
// of a batched prefill and the decode steps after it, dense and MoE; and the acceptance check of
// the GPU path: the real SmolLM2-135M-Instruct continues a chat prompt greedily with the same
// tokens as on the CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "compare.h"
#include "core/error.h"
#include "cuda_model_util.h"
#include "cuda_test_util.h"
#include "gpu/cuda_inference.h"
#include "infer/bundle.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/transformer.h"

namespace {

using namespace mf::cuda::testing;

mf::ModelConfig tiny(bool moe, bool shared = false) {
  mf::ModelConfig c;
  c.model_type = moe ? "mixtral" : "llama";
  c.vocab_size = 101;
  c.hidden_size = 128;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = true;
  if (moe) {
    c.num_experts = 4;
    c.top_k = 2;
  }
  if (shared) c.shared_expert_intermediate_size = 64;  // ungated: residual MoE style
  return c;
}

mf::ModelWeights bf16_weights(const mf::ModelConfig& c) { return clear_routing_weights(c, 21); }

int argmax(const float* row, int n) { return int(std::max_element(row, row + n) - row); }

class CudaInference : public CudaTest {};

void compare_prefill_and_decode(bool moe, bool shared = false) {
  const mf::ModelConfig c = tiny(moe, shared);
  const mf::ModelWeights w = bf16_weights(c);
  const int batch = 2, T = 19, V = c.vocab_size;
  mf::Transformer cpu(w);
  mf::KVCache cache(c, 64, batch);
  mf::gpu::CudaInference gpu(w, 64, batch);
  mf::Rng rng(3);
  std::vector<int32_t> prompt(size_t(batch * T));
  for (auto& t : prompt) t = int32_t(rng.below(uint64_t(V)));
  const mf::Tensor want = cpu.forward(prompt, batch, cache);  // [batch, V]: last positions
  std::vector<float> got = gpu.forward(prompt, batch);
  const std::vector<float> want_v(want.data<float>(), want.data<float>() + want.numel());
  EXPECT_LT(max_rel_err(got, want_v), 3e-2) << "prefill";
  // Greedy decode steps, each sequence fed its own CPU argmax so both sides see the same tokens.
  for (int step = 0; step < 6; ++step) {
    std::vector<int32_t> next(static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b) next[size_t(b)] = argmax(want_v.data() + b * V, V);
    const mf::Tensor w2 = cpu.forward(next, batch, cache);
    got = gpu.forward(next, batch);
    const std::vector<float> wv(w2.data<float>(), w2.data<float>() + w2.numel());
    EXPECT_LT(max_rel_err(got, wv), 3e-2) << "decode step " << step;
    for (int b = 0; b < batch; ++b) EXPECT_EQ(argmax(got.data() + b * V, V), argmax(wv.data() + b * V, V));
  }
  EXPECT_EQ(gpu.cache_length(), T + 6);
}

TEST_F(CudaInference, DensePrefillAndDecodeMatchCpu) { compare_prefill_and_decode(false); }
TEST_F(CudaInference, MoePrefillAndDecodeMatchCpu) { compare_prefill_and_decode(true); }
TEST_F(CudaInference, SharedExpertMoeMatchesCpu) { compare_prefill_and_decode(true, true); }

TEST_F(CudaInference, DecodeRoutesAreObservedLikeCpu) {
  const mf::ModelConfig c = tiny(true);
  auto cpu = mf::make_language_model(std::make_unique<mf::Transformer>(bf16_weights(c)), 32);
  auto gpu = mf::gpu::make_cuda_language_model(bf16_weights(c), 32);
  mf::DecodeExpertShares tc, tg;
  cpu->observe_routes(&tc);
  gpu->observe_routes(&tg);
  const std::vector<int32_t> prompt = {3, 14, 15, 92};
  cpu->forward(prompt);
  gpu->forward(prompt);
  for (int32_t t : {65, 35, 89}) {
    cpu->forward(std::vector<int32_t>{t});
    gpu->forward(std::vector<int32_t>{t});
  }
  EXPECT_EQ(tg.tokens, tc.tokens);
  ASSERT_EQ(tg.prob_sum.size(), tc.prob_sum.size());
  for (size_t e = 0; e < tc.prob_sum.size(); ++e) EXPECT_NEAR(tg.prob_sum[e], tc.prob_sum[e], 2e-2) << "expert " << e;
}

TEST_F(CudaInference, TruncateRewindsTheCache) {
  const mf::ModelConfig c = tiny(true);
  mf::gpu::CudaInference gpu(bf16_weights(c), 32, 1);
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {5, 6};
  gpu.forward(a, 1);
  const std::vector<float> first = gpu.forward(b, 1);
  gpu.truncate(4);
  const std::vector<float> again = gpu.forward(b, 1);
  EXPECT_EQ(first, again);
  EXPECT_THROW(gpu.forward(std::vector<int32_t>(40, 1), 1), mf::Error);  // past the cache
}

TEST_F(CudaInference, SmolLM2GreedyContinuationMatchesCpu) {
  const std::string path = mf::test::smollm2_gguf_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not fetched (scripts/fetch-smollm2.sh)";
  mf::LoadOptions cpu_opts;
  cpu_opts.max_context = 256;
  mf::ModelBundle cpu = mf::load_model_bundle(path, cpu_opts);
  mf::LoadOptions gpu_opts = cpu_opts;
  gpu_opts.make_model = [](mf::ModelWeights& w, int max_len) {
    return mf::gpu::make_cuda_language_model(std::move(w), max_len);
  };
  mf::ModelBundle gpu = mf::load_model_bundle(path, gpu_opts);
  const std::vector<mf::ChatMessage> messages = {{"user", "What is the capital of France?"}};
  const std::string text = cpu.chat_template->render(messages, true);
  std::vector<int32_t> tokens = cpu.tokenizer->encode(text);
  std::vector<float> lc = cpu.model->forward(tokens), lg = gpu.model->forward(tokens);
  EXPECT_LT(max_rel_err(lg, lc), 5e-2);
  std::vector<int32_t> cpu_out, gpu_out;
  for (int step = 0; step < 24; ++step) {
    const int32_t tc = argmax(lc.data(), int(lc.size())), tg = argmax(lg.data(), int(lg.size()));
    cpu_out.push_back(tc);
    gpu_out.push_back(tg);
    if (tc != tg) break;
    lc = cpu.model->forward(std::vector<int32_t>{tc});
    lg = gpu.model->forward(std::vector<int32_t>{tg});
  }
  EXPECT_EQ(gpu_out, cpu_out) << "CPU: " << cpu.tokenizer->decode(cpu_out, false)
                              << "\nGPU: " << gpu.tokenizer->decode(gpu_out, false);
}

TEST(CudaInferenceSupport, UnsupportedFeaturesAreNamed) {
  mf::ModelConfig c = tiny(true);
  EXPECT_EQ(mf::gpu::cuda_inference_unsupported(c), "");
  c.routing.policy = mf::RouterPolicy::ExpertChoice;
  EXPECT_EQ(mf::gpu::cuda_inference_unsupported(c), "expert_choice routing");
  c = tiny(false);
  c.sliding_window = 16;
  EXPECT_EQ(mf::gpu::cuda_inference_unsupported(c), "sliding-window attention");
}

}  // namespace
