// fuse, upcycle and inspect through the CLI: a tiny model pretrained by the test becomes the
// skeleton and the expert sources; the fused directory loads in info/generate, inspect shows the
// per-layer decision table, the token grid, JSON, and the domain x expert matrix with its HTML.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_run.h"

namespace {
using namespace mf::test;

class FuseCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    dir_ = fs::temp_directory_path() / ("moeforge_fuse_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream corpus(dir_ / "corpus.txt");
    corpus << "<|im_start|>system user assistant<|im_end|>\n";
    for (int i = 0; i < 200; ++i) corpus << "write code for the cat. solve math for the dog. " << i % 10 << "\n";
    const fs::path p = dir_ / "pretrain.yaml";
    std::ofstream(p) << "model:\n  init: scratch\n"
                        "  config: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,\n"
                        "           num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128,\n"
                        "           tie_word_embeddings: true}\n"
                        "tokenizer: char\n"
                        "data: {train: corpus.txt, valid_fraction: 0.1}\n"
                        "train: {steps: 10, batch: 4, seq_len: 32, lr: 3.0e-3, warmup: 2, eval_windows: 2}\n"
                        "output: " << (dir_ / "pre").string() << "\n";
    auto r = run({"train", p.string(), "--quiet"});
    ASSERT_EQ(r.rc, 0) << r.err;
    base_ = (dir_ / "pre" / "model").string();
  }
  void TearDown() override { if (!getenv("KEEP")) fs::remove_all(dir_); }

  fs::path recipe(const std::string& second_source, const std::string& router_init = "prompts") {
    const fs::path p = dir_ / "fuse.yaml";
    std::ofstream(p) << "skeleton: " << base_ << "\n"
                     << "experts:\n"
                        "  - {name: Coder, source: " << base_ << ", positive: [\"write code for the cat\"]}\n"
                        "  - {name: Thinker, source: " << second_source << ", positive: [\"solve math for the dog\"],\n"
                        "     negative: [\"write code\"]}\n"
                        "top_k: 1\n"
                        "router_init: {method: " << router_init << "}\n"
                        "output: " << (dir_ / "fused").string() << "\n";
    return p;
  }

  fs::path dir_;
  std::string base_;
};

TEST_F(FuseCli, HelpForEveryCommand) {
  for (const char* cmd : {"fuse", "upcycle", "inspect", "convert"}) {
    auto r = run({cmd, "--help"});
    EXPECT_EQ(r.rc, 0) << cmd << r.err;
    EXPECT_TRUE(has(r.out, "usage") || has(r.out, "moeforge")) << r.out;
  }
}

TEST_F(FuseCli, FusedModelLoadsRunsAndShowsItsRoutes) {
  auto r = run({"fuse", recipe(base_).string(), "--quiet"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["experts"], 2);
  EXPECT_EQ(summary["expert_names"], nlohmann::json::array({"Coder", "Thinker"}));
  const std::string fused = (dir_ / "fused").string();
  for (const char* f : {"config.json", "model.safetensors", "tokenizer_char.json"})
    EXPECT_TRUE(fs::exists(dir_ / "fused" / f)) << f;

  auto info = run({"info", "-m", fused});
  ASSERT_EQ(info.rc, 0) << info.err;
  EXPECT_TRUE(has(info.out, "mixtral")) << info.out;
  auto gen = run({"generate", "-m", fused, "-p", "write code", "--max-tokens", "8", "--temperature", "0"});
  EXPECT_EQ(gen.rc, 0) << gen.err;
  // An expert cache budget never changes the tokens (tests/unit/test_batch_engine has it on
  // packed Q8_0 experts that drop and repack); a negative one is a usage error.
  auto capped = run({"generate", "-m", fused, "-p", "write code", "--max-tokens", "8", "--temperature", "0",
                     "--expert-cache", "1"});
  EXPECT_EQ(capped.rc, 0) << capped.err;
  EXPECT_EQ(capped.out, gen.out);
  auto negative = run({"generate", "-m", fused, "-p", "write code", "--expert-cache", "-1"});
  EXPECT_EQ(negative.rc, 2);
  EXPECT_TRUE(has(negative.err, "--expert-cache must be >= 0 MiB, got -1")) << negative.err;
  auto chat = run({"chat", "-m", fused, "--show-experts", "--max-tokens", "6", "--temperature", "0"}, "write code\n");
  EXPECT_EQ(chat.rc, 0) << chat.err;
  EXPECT_TRUE(has(chat.err, "[experts: ")) << chat.err;

  auto table = run({"inspect", "-m", fused, "-p", "solve math for the dog", "--tokens"});
  ASSERT_EQ(table.rc, 0) << table.err;
  EXPECT_TRUE(has(table.out, "Layer  0 | 1. ")) << table.out;
  EXPECT_TRUE(has(table.out, "Layer  1 | 1. ")) << table.out;
  EXPECT_TRUE(has(table.out, "top-1 expert per token")) << table.out;
  auto js = run({"inspect", "-m", fused, "-p", "write code", "--json"});
  ASSERT_EQ(js.rc, 0) << js.err;
  const auto j = nlohmann::json::parse(js.out);
  ASSERT_EQ(j["layers"].size(), 2u);
  EXPECT_EQ(j["layers"][0]["tokens"].size(), 10u);  // "write code", one token per char
  const double share = j["layers"][0]["share"]["Coder"].get<double>() + j["layers"][0]["share"]["Thinker"].get<double>();
  EXPECT_NEAR(share, 1.0, 1e-5);

  std::ofstream data(dir_ / "split.jsonl");
  for (int i = 0; i < 6; ++i)
    data << nlohmann::json{{"instruction", "write code"}, {"output", "for the cat"}, {"domain", "Coder"}}.dump() << "\n"
         << nlohmann::json{{"instruction", "solve math"}, {"output", "for the dog"}, {"domain", "Thinker"}}.dump() << "\n";
  data.close();
  const fs::path html = dir_ / "routes.html";
  auto m = run({"inspect", "-m", fused, "--data", (dir_ / "split.jsonl").string(), "-o", html.string(), "--quiet"});
  ASSERT_EQ(m.rc, 0) << m.err;
  EXPECT_TRUE(has(m.out, "dispatch")) << m.out;
  EXPECT_TRUE(has(m.out, "Thinker")) << m.out;
  EXPECT_TRUE(has(slurp(html), "<table>"));

  // convert: to a directory it round-trips; a GGUF needs a byte-level BPE tokenizer.
  const std::string copy = (dir_ / "copy").string();
  auto c = run({"convert", "-m", fused, "-o", copy});
  ASSERT_EQ(c.rc, 0) << c.err;
  auto again = run({"inspect", "-m", copy, "-p", "write code", "--json"});
  ASSERT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out), j);
  auto g = run({"convert", "-m", fused, "-o", (dir_ / "fused.gguf").string()});
  EXPECT_EQ(g.rc, 1);
  EXPECT_TRUE(has(g.err, "tokenizer.json")) << g.err;
}

TEST_F(FuseCli, UpcycleAndClearErrors) {
  const std::string up = (dir_ / "up").string();
  auto r = run({"upcycle", "-m", base_, "--experts", "4", "--noise", "0.01", "-o", up});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["experts"], 4);
  EXPECT_EQ(run({"generate", "-m", up, "-p", "solve", "--max-tokens", "4"}).rc, 0);

  auto dense = run({"inspect", "-m", base_, "-p", "x"});
  EXPECT_EQ(dense.rc, 1);
  EXPECT_TRUE(has(dense.err, "dense model has no routers")) << dense.err;

  // A source of another width.
  const fs::path p = dir_ / "wide.yaml";
  std::ofstream(p) << "model:\n  init: scratch\n"
                      "  config: {model_type: llama, hidden_size: 32, intermediate_size: 80, num_hidden_layers: 2,\n"
                      "           num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128,\n"
                      "           tie_word_embeddings: true}\n"
                      "tokenizer: char\n"
                      "data: {train: corpus.txt, valid_fraction: 0.1}\n"
                      "train: {steps: 1, batch: 2, seq_len: 16, eval_windows: 1}\n"
                      "output: " << (dir_ / "wide").string() << "\n";
  ASSERT_EQ(run({"train", p.string(), "--quiet"}).rc, 0);
  auto bad = run({"fuse", recipe((dir_ / "wide" / "model").string()).string(), "--quiet"});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_TRUE(has(bad.err, "intermediate_size is 80 but the skeleton")) << bad.err;
  auto typo = run({"fuse", recipe(base_).string(), "--set", "topk=2"});
  EXPECT_EQ(typo.rc, 1);
  EXPECT_TRUE(has(typo.err, "unknown key 'topk'")) << typo.err;
}

}  // namespace

// Router supervision from domain labels: the fused routers start at zero (every token ties), the
// two experts are the same model (top-1 routing with identical experts gives the routers no LM
// gradient), so only the domain routing loss can teach each domain's answers to go to the expert
// named after it. Balanced sampling and
// the loss run together; the clear errors name the key.
TEST_F(FuseCli, RouterSupervisionSendsEachDomainToItsExpert) {
  auto f = run({"fuse", recipe(base_, "zeros").string(), "--quiet"});
  ASSERT_EQ(f.rc, 0) << f.err;
  const std::string fused = (dir_ / "fused").string();
  std::ofstream data(dir_ / "mix.jsonl");
  for (int i = 0; i < 24; ++i) {
    data << nlohmann::json{{"instruction", "write code " + std::to_string(i % 10)}, {"output", "cat cat cat"},
                           {"domain", "Coder"}}.dump() << "\n";
    if (i % 3 == 0)  // Thinker is the small domain: balanced sampling draws it as often
      data << nlohmann::json{{"instruction", "solve math " + std::to_string(i % 10)}, {"output", "dog dog dog"},
                             {"domain", "Thinker"}}.dump() << "\n";
  }
  data.close();
  auto dispatch = [&](const std::string& model) {
    auto m = run({"inspect", "-m", model, "--data", (dir_ / "mix.jsonl").string(), "--json", "--quiet"});
    EXPECT_EQ(m.rc, 0) << m.err;
    return nlohmann::json::parse(m.out)["dispatch_accuracy"];
  };
  const auto before = dispatch(fused);
  const fs::path recipe = dir_ / "routers.yaml";
  std::ofstream(recipe) << "model: {init: " << fused << "}\n"
                           "tokenizer: model\n"
                           "data: {train: mix.jsonl, format: sft, valid_fraction: 0.2, sampling: balanced}\n"
                           "freeze: [experts, attention, embeddings, norm]\n"
                           "train: {steps: 30, batch: 4, seq_len: 128, lr: 0.1, warmup: 0, lb_coef: 0,\n"
                           "        router_domain_coef: 1.0, eval_windows: 2}\n"
                           "output: " << (dir_ / "routers").string() << "\n";
  auto t = run({"train", recipe.string()});
  ASSERT_EQ(t.rc, 0) << t.err;
  EXPECT_TRUE(has(t.err, "router supervision (coef 1): Coder -> expert 0, Thinker -> expert 1")) << t.err;
  EXPECT_TRUE(has(t.err, "only top-1 routers train")) << t.err;  // a forward per step, no backward
  std::vector<double> domain_loss;
  std::ifstream metrics(dir_ / "routers" / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("domain_loss")) domain_loss.push_back(j["domain_loss"]);
  }
  ASSERT_EQ(domain_loss.size(), 30u);
  // Two MoE layers, each ln 2 at zero routers, summed.
  EXPECT_NEAR(domain_loss.front(), 2 * std::log(2.0), 1e-4);
  EXPECT_LT(domain_loss.back(), 0.6 * domain_loss.front());
  const auto after = dispatch((dir_ / "routers" / "model").string());
  EXPECT_LT(before["Thinker"].get<double>(), 0.05) << "tied routers pick the first expert: " << before;
  // About half of each answer is the chat template's end-of-turn marker, the same characters in
  // both domains, which a 2-layer character model routes by context only: 0.75 / 0.68 here.
  EXPECT_GT(after["Coder"].get<double>(), 0.6) << after;
  EXPECT_GT(after["Thinker"].get<double>(), 0.6) << after;

  // Clear errors: a dense model has no router; experts named after no domain; a weight for a
  // domain the data lacks; weights without the balanced sampler.
  auto dense = run({"train", recipe.string(), "--set", "model.init=" + base_, "--set", "freeze=[]"});
  EXPECT_EQ(dense.rc, 1);
  EXPECT_TRUE(has(dense.err, "no MoE layer")) << dense.err;
  std::ofstream(dir_ / "other.jsonl") << nlohmann::json{{"instruction", "hi"}, {"output", "there"}, {"domain", "Actor"}}.dump()
                                      << "\n" << nlohmann::json{{"instruction", "yo"}, {"output", "ho"}, {"domain", "Actor"}}.dump()
                                      << "\n";
  auto none = run({"train", recipe.string(), "--set", "data.train=other.jsonl", "--set", "data.valid_fraction=0.5"});
  EXPECT_EQ(none.rc, 1);
  EXPECT_TRUE(has(none.err, "no expert is named after a domain of the data (domains: Actor; experts: Coder, Thinker)"))
      << none.err;
  auto weight = run({"train", recipe.string(), "--set", "data.domain_weights={Writer: 2}"});
  EXPECT_EQ(weight.rc, 1);
  EXPECT_TRUE(has(weight.err, "'data.domain_weights.Writer': no such domain in the training data (Coder, Thinker)"))
      << weight.err;
  auto scope = run({"train", recipe.string(), "--set", "train.router_domain_scope=word"});
  EXPECT_EQ(scope.rc, 1);
  EXPECT_TRUE(has(scope.err, "'train.router_domain_scope' must be record or token, got 'word'")) << scope.err;
  auto unbalanced = run({"train", recipe.string(), "--set", "data.sampling=mix", "--set", "data.domain_weights={Coder: 2}"});
  EXPECT_EQ(unbalanced.rc, 1);
  EXPECT_TRUE(has(unbalanced.err, "set data.sampling: balanced")) << unbalanced.err;
  // Top-1 routers alone with no aux loss: the LM loss gives them no gradient, nothing would train.
  auto idle = run({"train", recipe.string(), "--set", "train.router_domain_coef=0"});
  EXPECT_EQ(idle.rc, 1);
  EXPECT_TRUE(has(idle.err, "the LM loss gives them no gradient; set train.router_domain_coef")) << idle.err;
}
