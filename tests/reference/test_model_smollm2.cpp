// Acceptance test of the inference path: the real SmolLM2-135M-Instruct GGUF (Q4_1). The chat
// prompt moeforge renders and tokenizes, the logits it computes from the quantized weights and
// its greedy continuation must equal the PyTorch reference's (gen_model_smollm2.py: same
// weights dequantized by the `gguf` package, HF tokenizers, jinja2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "compare.h"
#include "infer/bundle.h"
#include "kernels/cpu/packed_quant.h"
#include "model/load.h"
#include "model/transformer.h"

namespace mf {
namespace {

using nlohmann::json;

std::string fixture_dir() {
  const char* dir = std::getenv("MOEFORGE_FIXTURES");
  return dir ? dir : "";
}

std::string model_path() { return test::smollm2_gguf_path(); }
std::vector<float> read_f32(const std::string& path) { return test::read_f32_file(path); }
double rel_err(const float* a, const float* b, size_t n) { return test::max_err_over_scale(a, b, n); }

// 30 layers of fp32 arithmetic in a different order (blocked GEMM, fused dequantization)
// than PyTorch's; measured errors are ~1e-5, so 1e-4 still catches any real mistake.
constexpr double kTol = 1e-4;

struct Reference {
  json meta;
  std::vector<float> logits;  // [T, vocab]
};

// Loaded once for the suite; empty when the generator wrote no fixtures.
const std::optional<Reference>& reference() {
  static const std::optional<Reference> ref = []() -> std::optional<Reference> {
    std::ifstream in(fixture_dir() + "/ref.json");
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return Reference{json::parse(ss.str()), read_f32(fixture_dir() + "/logits.f32")};
  }();
  return ref;
}

class SmolLM2Model : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(model_path()))
      GTEST_SKIP() << model_path() << " not found (run scripts/fetch-smollm2.sh); skipping the SmolLM2 model check";
    ASSERT_TRUE(reference().has_value()) << "fixtures missing in " << fixture_dir()
                                         << " (run via ctest: gen_model_smollm2 writes them)";
    ref_ = &reference()->meta;
    logits_ = &reference()->logits;
  }
  std::vector<int32_t> ids() const { return (*ref_)["ids"].get<std::vector<int32_t>>(); }
  int64_t vocab() const { return (*ref_)["vocab"]; }

  const json* ref_ = nullptr;
  const std::vector<float>* logits_ = nullptr;
};

TEST_F(SmolLM2Model, ChatPromptRendersAndTokenizesAsTheReference) {
  ModelBundle m = load_model_bundle(model_path(), {.max_context = 256});
  std::vector<ChatMessage> messages;
  for (const json& msg : (*ref_)["messages"]) messages.push_back({msg["role"], msg["content"]});
  ASSERT_TRUE(m.has_own_chat_template);
  const std::string prompt = m.chat_template->render(messages, true);
  EXPECT_EQ(prompt, (*ref_)["prompt"].get<std::string>());
  EXPECT_EQ(m.tokenizer->encode(prompt), ids());
  EXPECT_EQ(m.summary.layers, 30);
  EXPECT_EQ(m.summary.vocab, 49152);
}

TEST_F(SmolLM2Model, PrefillLogitsMatchTorchAtEveryPosition) {
  Transformer model(load_model_weights(model_path()));
  EXPECT_EQ(model.weights().tensors.at("model.layers.0.mlp.up_proj.weight").dtype(), DType::Q4_1)
      << "the check is meant to run on the quantized weights as stored";
  const auto tokens = ids();
  KVCache cache(model.config(), 64);
  Tensor logits = model.forward(tokens, 1, cache, {.all_logits = true});
  ASSERT_EQ(logits.shape(), (Shape{int64_t(tokens.size()), vocab()}));
  double worst = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const double e = rel_err(logits.data<float>() + t * vocab(), logits_->data() + t * vocab(), size_t(vocab()));
    EXPECT_LT(e, kTol) << "position " << t;
    worst = std::max(worst, e);
  }
  RecordProperty("max_rel_err", std::to_string(worst));
  std::printf("SmolLM2 prefill logits: max relative error %.3g over %zu positions\n", worst, tokens.size());
}

// Both exact decode layouts (the stored one, and the packed one the CLI uses by default): the
// last prompt token fed alone takes the decode kernels and must give the reference's logits;
// the greedy continuation must be the reference's.
TEST_F(SmolLM2Model, GreedyDecodeWithCacheFollowsTheReference) {
  for (const bool packed : {false, true}) {
    SCOPED_TRACE(packed ? "packed decode layout" : "stored layout");
    ModelBundle m = load_model_bundle(model_path(), {.max_context = 256, .pack_decode = packed, .int8_decode = false});
    const bool can_pack = PackedQuantMatrix::supports(Tensor::empty(DType::Q4_1, {16, 32}));
    if (packed && can_pack)
      EXPECT_GT(m.summary.decode_packed_bytes, size_t(90) << 20) << "every Q4_1/Q8_0 matrix should be packed";
    else
      EXPECT_EQ(m.summary.decode_packed_bytes, 0u);
    const auto want = (*ref_)["greedy"].get<std::vector<int32_t>>();
    const auto prompt = ids();
    m.model->forward(std::span(prompt).first(prompt.size() - 1));
    std::vector<float> logits = m.model->forward(std::span(prompt).last(1));
    const float* last = logits_->data() + (prompt.size() - 1) * size_t(vocab());
    EXPECT_LT(rel_err(logits.data(), last, size_t(vocab())), kTol);
    std::vector<int32_t> got;
    for (size_t step = 0; step < want.size(); ++step) {
      const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      got.push_back(next);
      const int32_t one[1] = {next};
      logits = m.model->forward(one);  // one-token decode steps: the GEMV path and the KV cache
    }
    EXPECT_EQ(got, want) << "greedy continuation: [" << m.tokenizer->decode(got) << "] vs reference ["
                         << m.tokenizer->decode(want) << "]";
    EXPECT_NE(m.tokenizer->decode(got).find("Paris"), std::string::npos) << m.tokenizer->decode(got);
  }
}

// The int8 decode path (`--int8`): prefill stays exact (M > 8), decode steps quantize
// activations per block of 32. On this model that scheme moves the logits by ~4% of their
// largest value (a float64 simulation of the same scheme in PyTorch gives 4.5%), enough to
// flip the reference's first answer token, a near tie (24.6948 vs 24.6932); so the check is
// the distance, that the reference's choice stays among the int8 path's top candidates, and
// that the answer still says Paris.
TEST_F(SmolLM2Model, Int8DecodeStaysCloseAndStillAnswers) {
  LoadOptions opts;
  opts.max_context = 256;
  opts.int8_decode = true;
  ModelBundle m = load_model_bundle(model_path(), opts);
  if (m.summary.decode_activations != "int8") GTEST_SKIP() << "no AVX-512 VNNI: the int8 decode path is off";
  const auto want = (*ref_)["greedy"].get<std::vector<int32_t>>();
  const auto prompt = ids();
  // Prefill all but the last prompt token, then feed it alone so its logits come from the int8 path.
  m.model->forward(std::span(prompt).first(prompt.size() - 1));
  std::vector<float> logits = m.model->forward(std::span(prompt).last(1));
  const float* last = logits_->data() + (prompt.size() - 1) * size_t(vocab());
  const double e = rel_err(logits.data(), last, size_t(vocab()));
  EXPECT_LT(e, 6e-2) << "int8 decode logits vs the exact reference";
  EXPECT_GT(e, 0.0);
  std::printf("SmolLM2 int8 decode logits: max relative error %.3g\n", e);
  int better = 0;  // candidates the int8 path ranks above the reference's greedy token
  for (float v : logits) better += v > logits[size_t(want[0])];
  EXPECT_LT(better, 5) << "the reference's first token fell out of the int8 path's top 5";
  std::vector<int32_t> got;
  for (int step = 0; step < 24; ++step) {
    const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (next == 2) break;  // <|im_end|>
    got.push_back(next);
    const int32_t one[1] = {next};
    logits = m.model->forward(one);
  }
  EXPECT_NE(m.tokenizer->decode(got).find("Paris"), std::string::npos) << m.tokenizer->decode(got);
  std::printf("SmolLM2 int8 greedy answer: %s\n", m.tokenizer->decode(got).c_str());
}

}  // namespace
}  // namespace mf
