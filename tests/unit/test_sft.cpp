// Instruction data for fine-tuning: records with bad lines reported at file:line, chat-templated
// tokenization whose loss mask covers exactly the answer, length-bucketed batches under a token
// budget that cover every example once per epoch and resume exactly, domain-balanced sampling,
// and per-domain scoring
// that padding does not change.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "data/records.h"
#include "data/sft_record.h"
#include "data/sft_tokenize.h"
#include "chat/chat_template.h"
#include "model/init.h"
#include "tokenizer/tokenizer.h"
#include "train/domain_eval.h"
#include "train/sft_data.h"

namespace fs = std::filesystem;

namespace {

fs::path temp_file(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("moeforge_sft_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const mf::Error& e) {
    return e.what();
  }
  return "";
}

const char* kCorpus = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'<>|_\n";

struct Chat {
  std::unique_ptr<mf::Tokenizer> tok = mf::make_char_tokenizer(kCorpus);
  mf::ChatTemplate tmpl{mf::default_chatml_template(), "", ""};
  mf::RenderChat render = [this](const std::vector<mf::ChatTurn>& turns, bool gen) {
    std::vector<mf::ChatMessage> m;
    for (const auto& t : turns) m.push_back({t.role, t.content});
    return tmpl.render(m, gen);
  };
};

mf::SftRecord record(std::string instruction, std::string output, std::string domain = "Coder") {
  mf::SftRecord r;
  r.instruction = std::move(instruction);
  r.output = std::move(output);
  r.domain = std::move(domain);
  r.source = "test";
  return r;
}

TEST(Records, MalformedLinesAreReportedAtFileAndLine) {
  const fs::path p = temp_file("bad.jsonl",
                               "{\"instruction\": \"a\", \"output\": \"b\"}\n"
                               "\n"
                               "{\"instruction\": \"a\", \"output\": \n"
                               "{\"instruction\": \"a\"}\n"
                               "[1, 2]\n"
                               "{\"instruction\": \"c\", \"output\": \"d\", \"history\": [{\"role\": \"bot\", \"content\": \"x\"}]}\n");
  mf::BadRecordPolicy strict;
  const std::string e = error_of([&] { mf::read_sft_jsonl(p.string(), strict); });
  EXPECT_NE(e.find(p.string() + ":3: malformed JSON"), std::string::npos) << e;
  EXPECT_NE(e.find("--skip-bad"), std::string::npos) << e;

  mf::BadRecordPolicy skip(true);
  const auto records = mf::read_sft_jsonl(p.string(), skip);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(skip.skipped(), 4);
  ASSERT_EQ(skip.examples().size(), 4u);
  EXPECT_NE(skip.examples()[1].find(":4: missing field \"output\""), std::string::npos) << skip.examples()[1];
  EXPECT_NE(skip.examples()[2].find(":5: expected a JSON object"), std::string::npos) << skip.examples()[2];
  EXPECT_NE(skip.examples()[3].find(":6: history role"), std::string::npos) << skip.examples()[3];
  fs::remove(p);
}

TEST(Records, JsonArrayElementsKnowTheirLine) {
  const fs::path p = temp_file("arr.json",
                               "[\n"
                               "  {\"instruction\": \"a, [b]\", \"output\": \"}\"},\n"
                               "  {\"instruction\": 3,\n"
                               "   \"output\": \"x\"},\n"
                               "  {\"instruction\": \"q\", \"output\": \"r\\\"\"}\n"
                               "]\n");
  mf::BadRecordPolicy skip(true);
  std::vector<int64_t> lines;
  mf::read_json_array(p.string(), skip, [&](const nlohmann::json& j, int64_t line) {
    mf::required_string(j, "instruction");
    lines.push_back(line);
  });
  EXPECT_EQ(lines, (std::vector<int64_t>{2, 5}));
  ASSERT_EQ(skip.skipped(), 1);
  EXPECT_NE(skip.examples()[0].find(":3: field \"instruction\" must be a string"), std::string::npos)
      << skip.examples()[0];

  const fs::path t = temp_file("trunc.json", "[{\"instruction\": \"a\", \"output\": \"b\"},\n {\"instruction\": \"c\"");
  mf::BadRecordPolicy strict;
  const std::string e = error_of([&] { mf::read_json_array(t.string(), strict, [](const nlohmann::json&, int64_t) {}); });
  EXPECT_NE(e.find(":2: truncated JSON array"), std::string::npos) << e;
  fs::remove(p);
  fs::remove(t);
}

TEST(SftTokenize, TheMaskCoversExactlyTheAnswerAndItsEndOfTurn) {
  Chat c;
  mf::SftRecord r = record("say hi", "hi there!");
  r.input = "to bob";
  r.history = {{"user", "who are you?"}, {"assistant", "a bot"}};
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;
  mf::tokenize_sft_record(r, *c.tok, c.render, tokens, mask);
  ASSERT_EQ(tokens.size(), mask.size());
  std::vector<int32_t> answer, prompt;
  for (size_t i = 0; i < tokens.size(); ++i) (mask[i] ? answer : prompt).push_back(tokens[i]);
  // The masked tokens are one contiguous tail.
  const auto first = std::find(mask.begin(), mask.end(), 1);
  EXPECT_TRUE(std::all_of(first, mask.end(), [](uint8_t m) { return m == 1; }));
  EXPECT_EQ(c.tok->decode(answer), "hi there!<|im_end|>\n");
  const std::string p = c.tok->decode(prompt);
  EXPECT_EQ(p, "<|im_start|>user\nwho are you?<|im_end|>\n<|im_start|>assistant\na bot<|im_end|>\n"
               "<|im_start|>user\nsay hi\n\nto bob<|im_end|>\n<|im_start|>assistant\n");
}

TEST(SftTokenize, LongExamplesAreCutOrDroppedAndCounted) {
  Chat c;
  const std::vector<mf::SftRecord> recs = {record("short", "ok", "A"), record("short", std::string(200, 'x'), "B"),
                                           record(std::string(200, 'q'), "ok", "B")};
  mf::SftTokenizeOptions o;
  o.max_len = 100;
  mf::SftTokenizeStats st;
  const mf::SftExamples ex = mf::tokenize_sft(recs, *c.tok, c.render, o, &st);
  EXPECT_EQ(ex.size(), 2u);
  EXPECT_EQ(st.truncated, 1);
  EXPECT_EQ(st.dropped, 1);
  EXPECT_EQ(ex.length(1), 100);
  EXPECT_EQ(ex.domains, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(ex.domain, (std::vector<int32_t>{0, 1}));

  const mf::SftExamples back = mf::unpack_sft_examples(mf::pack_sft_examples(ex), ex.domains);
  EXPECT_EQ(back.tokens, ex.tokens);
  EXPECT_EQ(back.loss_mask, ex.loss_mask);
  EXPECT_EQ(back.offsets, ex.offsets);
  EXPECT_EQ(back.domain, ex.domain);
  std::vector<int32_t> cut = mf::pack_sft_examples(ex);
  cut.pop_back();
  EXPECT_THROW(mf::unpack_sft_examples(cut, ex.domains), mf::Error);

  const mf::SftExamples tail = mf::slice_sft_examples(ex, 1, 2);
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_TRUE(std::equal(tail.sequence(0).begin(), tail.sequence(0).end(), ex.sequence(1).begin()));
}

mf::SftExamples varied_examples(const Chat& c, int n) {
  std::vector<mf::SftRecord> recs;
  for (int i = 0; i < n; ++i)
    recs.push_back(record("q" + std::string(size_t(i % 13), 'a'), "r" + std::string(size_t((i * 7) % 17), 'b'),
                          i % 3 ? "Coder" : "Writer"));
  return mf::tokenize_sft(recs, *c.tok, c.render, {});
}

TEST(SftData, BatchesRespectTheBudgetAndCoverEachEpochOnce) {
  Chat c;
  const mf::SftExamples train = varied_examples(c, 57), valid = varied_examples(c, 9);
  mf::SftBatching b;
  b.max_rows = 4;
  b.max_tokens = 4 * 60;
  b.pad_id = 0;
  // Each sequence appears once per epoch: collect them through the batches' real rows.
  const auto plan = mf::SftData::plan_batches(train, [&] {
    std::vector<uint32_t> o(train.size());
    for (uint32_t i = 0; i < o.size(); ++i) o[i] = i;
    return o;
  }(), b);
  std::multiset<uint32_t> seen;
  for (const auto& batch : plan) {
    EXPECT_LE(int(batch.size()), b.max_rows);
    int64_t longest = 0;
    for (uint32_t i : batch) longest = std::max(longest, train.length(i)), seen.insert(i);
    EXPECT_LE(int64_t(batch.size()) * longest, b.max_tokens);
  }
  EXPECT_EQ(seen.size(), train.size());
  EXPECT_EQ(std::set<uint32_t>(seen.begin(), seen.end()).size(), train.size());

  mf::SftData data(train, valid, b, 0, 5);
  mf::Batch batch;
  int64_t scored = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    data.next(batch);
    ASSERT_EQ(batch.tokens.size(), size_t(batch.rows) * size_t(batch.cols));
    for (size_t k = 0; k < batch.targets.size(); ++k) scored += batch.targets[k] >= 0;
  }
  EXPECT_EQ(scored, train.answer_tokens()) << "one epoch scores every answer token once";
  EXPECT_EQ(data.epoch(), 0);
  data.next(batch);
  EXPECT_EQ(data.epoch(), 1);
}

TEST(SftData, SameSeedSameBatchesAndStateResumes) {
  Chat c;
  const mf::SftExamples train = varied_examples(c, 40), valid = varied_examples(c, 6);
  mf::SftBatching b;
  b.max_rows = 3;
  b.max_tokens = 3 * 60;
  mf::SftData a(train, valid, b, 0, 11), resumed(train, valid, b, 0, 99);
  mf::Batch x, y;
  std::string state;
  for (int i = 0; i < 25; ++i) {  // crosses an epoch boundary
    if (i == 17) state = a.state();
    a.next(x);
  }
  mf::SftData again(train, valid, b, 0, 11);
  for (int i = 0; i < 25; ++i) again.next(y);
  EXPECT_EQ(x.tokens, y.tokens);
  resumed.set_state(state);
  mf::SftData replay(train, valid, b, 0, 11);
  for (int i = 0; i < 17; ++i) replay.next(y);
  for (int i = 17; i < 25; ++i) {
    resumed.next(x);
    replay.next(y);
    EXPECT_EQ(x.tokens, y.tokens) << "batch " << i;
    EXPECT_EQ(x.targets, y.targets) << "batch " << i;
  }
}

// varied_examples has Coder twice as often as Writer; the balanced sampler draws them evenly, or
// by weight, and still resumes exactly. Batches say each row's domain.
TEST(SftData, BalancedSamplingDrawsDomainsByWeightAndResumes) {
  Chat c;
  const mf::SftExamples train = varied_examples(c, 300), valid = varied_examples(c, 6);
  ASSERT_EQ(train.domains, (std::vector<std::string>{"Coder", "Writer"}));
  mf::SftBatching b;
  b.max_rows = 4;
  b.max_tokens = 4 * 60;
  auto writer_share = [&](mf::SftSampling sampling, uint64_t seed) -> double {
    mf::SftData data(train, valid, b, 0, seed, std::move(sampling));
    mf::Batch batch;
    int64_t rows = 0, writer = 0;
    while (data.epoch() < 3) {
      data.next(batch);
      EXPECT_EQ(batch.row_domain.size(), size_t(batch.rows));
      for (int r = 0; r < batch.rows; ++r) {
        ++rows;
        writer += batch.row_domain[size_t(r)] == 1;
      }
    }
    return double(writer) / double(rows);
  };
  EXPECT_NEAR(writer_share({}, 3), 1.0 / 3.0, 0.01) << "the mix's own proportions";
  EXPECT_NEAR(writer_share({{1.0, 1.0}}, 3), 0.5, 0.05) << "balanced";
  EXPECT_NEAR(writer_share({{1.0, 3.0}}, 3), 0.75, 0.05) << "Writer weighed 3";
  EXPECT_EQ(writer_share({{1.0, 0.0}}, 3), 0.0) << "weight 0 leaves a domain out";

  mf::SftData a(train, valid, b, 0, 7, {{1.0, 1.0}}), resumed(train, valid, b, 0, 1, {{1.0, 1.0}});
  mf::Batch x, y;
  std::string state;
  for (int i = 0; i < 120; ++i) {  // crosses an epoch boundary
    if (i == 90) state = a.state();
    a.next(x);
  }
  resumed.set_state(state);
  mf::SftData replay(train, valid, b, 0, 7, {{1.0, 1.0}});
  for (int i = 0; i < 90; ++i) replay.next(y);
  for (int i = 90; i < 120; ++i) {
    resumed.next(x);
    replay.next(y);
    ASSERT_EQ(x.tokens, y.tokens) << "batch " << i;
  }

  EXPECT_NE(error_of([&] { mf::SftData(train, valid, b, 0, 1, {{1.0}}); }).find("1 domain weights for 2 domains"),
            std::string::npos);
  EXPECT_NE(error_of([&] { mf::SftData(train, valid, b, 0, 1, {{0.0, 0.0}}); }).find("no domain"), std::string::npos);
  EXPECT_NE(error_of([&] { mf::SftData(train, valid, b, 0, 1, {{1.0, -1.0}}); }).find("Writer"), std::string::npos);
}

TEST(DomainEval, PaddingDoesNotChangeTheScores) {
  Chat c;
  const mf::SftExamples ex = varied_examples(c, 12);
  mf::ModelConfig cfg;
  cfg.model_type = "llama";
  cfg.vocab_size = c.tok->vocab_size();
  cfg.hidden_size = 32;
  cfg.intermediate_size = 48;
  cfg.num_layers = 2;
  cfg.num_heads = 4;
  cfg.num_kv_heads = 2;
  cfg.max_position_embeddings = 128;
  cfg.tie_word_embeddings = true;
  mf::TrainableTransformer model(mf::init_random_weights(cfg, 3), [](const std::string&) { return true; });
  mf::SftBatching batched;
  batched.max_rows = 5;
  batched.max_tokens = 5 * 128;
  mf::SftBatching single = batched;
  single.max_rows = 1;
  const auto a = mf::evaluate_by_domain(model, ex, batched), b = mf::evaluate_by_domain(model, ex, single);
  ASSERT_EQ(a.size(), 3u);  // Coder, Writer, all
  EXPECT_EQ(a[0].domain, "Coder");
  EXPECT_EQ(a[2].domain, "all");
  EXPECT_EQ(a[2].examples, 12);
  EXPECT_EQ(a[2].answer_tokens, ex.answer_tokens());
  EXPECT_EQ(a[0].answer_tokens + a[1].answer_tokens, a[2].answer_tokens);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i].loss(), b[i].loss(), 1e-5 * b[i].loss()) << a[i].domain;
}

}  // namespace
