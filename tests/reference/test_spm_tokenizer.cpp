// Parity of moeforge's SentencePiece tokenizers with the references on a corpus of real text
// (the shared datasets' first ~200 KB in 4 KB chunks, plus edge cases): gen_spm_tokenizer.py
// trains small SentencePiece BPE and Unigram models, converts them to tokenizer.json with HF
// `tokenizers`, and records HF's ids and decoded text and SentencePiece's own for every text.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "infer/model_files.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace {

using nlohmann::json;

std::string fixture_dir() {
  const char* dir = std::getenv("MOEFORGE_FIXTURES");
  return dir ? dir : "../fixtures/spm_tokenizer";
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path << " (run via ctest: gen_spm_tokenizer writes it)";
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

std::string show(const std::vector<int32_t>& ids, size_t from) {
  std::string s;
  for (size_t i = from; i < ids.size() && i < from + 24; ++i) s += std::to_string(ids[i]) + " ";
  return s;
}

size_t first_difference(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

// texts.json: [{"source", "text"}], the corpus every cases file indexes.
const json& texts() {
  static const json t = read_json(fixture_dir() + "/texts.json");
  return t;
}

struct Tally {
  size_t texts = 0, tokens = 0, id_mismatches = 0, decode_mismatches = 0;
};

// Encodes every case and compares ids (and, where recorded, model ids and decoded text).
// Encodes every text and compares ids (and, where recorded, model ids and decoded text: a case
// without "decoded" decodes to its text, one without "decoded_skip" to its "decoded").
Tally check_cases(const mf::Tokenizer& tok, const json& cases, const std::string& label) {
  Tally t;
  int reported = 0;
  EXPECT_EQ(cases.size(), texts().size()) << label;
  for (size_t i = 0; i < cases.size() && i < texts().size(); ++i) {
    const json& c = cases[i];
    const std::string text = texts()[i]["text"].get<std::string>();
    const std::string source = texts()[i]["source"].get<std::string>();
    const auto expected = c["ids"].get<std::vector<int32_t>>();
    const auto ids = tok.encode(text, true);
    ++t.texts;
    t.tokens += expected.size();
    if (ids != expected) {
      ++t.id_mismatches;
      if (reported++ < 5) {
        const size_t at = first_difference(ids, expected);
        ADD_FAILURE() << label << ": ids differ for a text from " << source << " at token " << at << "\n  text: ["
                      << text.substr(0, 200) << "]\n  got:      " << show(ids, at) << "\n  expected: " << show(expected, at);
      }
    }
    if (c.contains("model_ids")) {
      EXPECT_EQ(mf::encode_for_model(tok, text), c["model_ids"].get<std::vector<int32_t>>())
          << label << ": BOS/EOS differ for [" << text.substr(0, 80) << "]";
    }
    const std::string want = c.contains("decoded") ? c["decoded"].get<std::string>() : text;
    const std::string decoded = tok.decode(expected);
    if (decoded != want) {
      ++t.decode_mismatches;
      if (reported++ < 5)
        ADD_FAILURE() << label << ": decode differs\n  got:      [" << decoded.substr(0, 200) << "]\n  expected: ["
                      << want.substr(0, 200) << "]";
    }
    const std::string want_skip = c.contains("decoded_skip") ? c["decoded_skip"].get<std::string>() : want;
    const std::string skip = tok.decode(expected, true);
    EXPECT_EQ(skip, want_skip) << label << ": skip_special decode";
    // The streaming decoder (chat, serve) must print exactly what decode() returns.
    mf::StreamDecoder stream(tok, true);
    std::string streamed;
    for (int32_t id : expected) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, skip) << label << ": streamed text differs from decode()";
  }
  std::printf("%s: %zu texts, %zu tokens, %zu id mismatches, %zu decode mismatches\n", label.c_str(), t.texts,
              t.tokens, t.id_mismatches, t.decode_mismatches);
  return t;
}

class HfSpmParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfSpmParity, TokenizerJsonMatchesHf) {
  const std::string dir = fixture_dir() + "/" + GetParam();
  const json fx = read_json(dir + "/cases.json");
  const auto tok = mf::load_hf_tokenizer(dir + "/tokenizer.json");
  EXPECT_EQ(tok->vocab_size(), fx["vocab_size"].get<int32_t>());
  ASSERT_GT(fx["cases"].size(), 30u);
  const Tally t = check_cases(*tok, fx["cases"], GetParam() + " tokenizer.json");
  EXPECT_EQ(t.id_mismatches, 0u);
  EXPECT_EQ(t.decode_mismatches, 0u);
}

INSTANTIATE_TEST_SUITE_P(Flavours, HfSpmParity,
                         ::testing::Values("bpe_legacy", "bpe_metaspace", "unigram", "unigram_lower", "odd_regex"));

// tokenizer.model read by moeforge's own protobuf reader, against SentencePiece itself.
class SentencePieceParity : public ::testing::TestWithParam<std::string> {};

TEST_P(SentencePieceParity, ModelFileMatchesSentencePiece) {
  const json fx = read_json(fixture_dir() + "/spm_" + GetParam() + "_cases.json");
  const auto tok = mf::make_spm_tokenizer(mf::spm_config_from_model_file(fixture_dir() + "/spm_" + GetParam() + ".model"));
  EXPECT_EQ(tok->vocab_size(), fx["vocab_size"].get<int32_t>());
  // SentencePiece never parses "<s>" in text; compare without special-token parsing.
  Tally t;
  int reported = 0;
  const json& cases = fx["cases"];
  ASSERT_EQ(cases.size(), texts().size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string text = texts()[i]["text"].get<std::string>();
    const auto expected = cases[i]["ids"].get<std::vector<int32_t>>();
    const auto ids = tok->encode(text, false);
    ++t.texts;
    t.tokens += expected.size();
    if (ids != expected && reported++ < 5) {
      const size_t at = first_difference(ids, expected);
      ADD_FAILURE() << GetParam() << " tokenizer.model: ids differ at " << at << " for [" << text.substr(0, 200)
                    << "]\n  got:      " << show(ids, at) << "\n  expected: " << show(expected, at);
    }
    t.id_mismatches += ids != expected;
    const std::string want = cases[i].contains("decoded") ? cases[i]["decoded"].get<std::string>() : text;
    if (tok->decode(expected, true) != want) ++t.decode_mismatches;
  }
  std::printf("%s tokenizer.model: %zu texts, %zu tokens, %zu id mismatches, %zu decode mismatches\n",
              GetParam().c_str(), t.texts, t.tokens, t.id_mismatches, t.decode_mismatches);
  EXPECT_EQ(t.id_mismatches, 0u);
  EXPECT_EQ(t.decode_mismatches, 0u);
}

INSTANTIATE_TEST_SUITE_P(Models, SentencePieceParity, ::testing::Values("bpe", "unigram"));

// tokenizer.json -> GGUF "llama" vocabulary (what moeforge's exporter writes) -> a GGUF file ->
// read back: llama.cpp's spm algorithm on scores must give HF's ids.
TEST(SpmGguf, TokenizerJsonThroughGgufGivesTheSameIds) {
  const std::string dir = fixture_dir() + "/bpe_legacy";
  const mf::BpeVocab v = mf::bpe_vocab_from_tokenizer_json(dir + "/tokenizer.json");
  EXPECT_EQ(v.model, "llama");
  ASSERT_EQ(v.scores.size(), v.tokens.size());
  const std::string path = testing::TempDir() + "/spm_vocab.gguf";
  mf::GgufWriter g;
  g.add_kv("general.architecture", mf::GgufValue::of_string("llama"));
  g.add_kv("tokenizer.ggml.model", mf::GgufValue::of_string(v.model));
  g.add_kv("tokenizer.ggml.tokens", mf::GgufValue::of_string_array(v.tokens));
  g.add_kv("tokenizer.ggml.scores", mf::GgufValue::of_f32_array(v.scores));
  g.add_kv("tokenizer.ggml.token_type", mf::GgufValue::of_i32_array(v.token_types));
  g.add_kv("tokenizer.ggml.add_space_prefix", mf::GgufValue::of_bool(v.add_space_prefix));
  g.add_kv("tokenizer.ggml.bos_token_id", mf::GgufValue::of_u32(uint32_t(v.bos_id)));
  g.add_kv("tokenizer.ggml.eos_token_id", mf::GgufValue::of_u32(uint32_t(v.eos_id)));
  g.add_kv("tokenizer.ggml.unknown_token_id", mf::GgufValue::of_u32(uint32_t(v.unk_id)));
  g.add_kv("tokenizer.ggml.add_bos_token", mf::GgufValue::of_bool(v.add_bos));
  g.write(path);
  const mf::TokenizerFiles tf = mf::load_gguf_tokenizer_files(path);
  EXPECT_EQ(tf.tokenizer->kind, "spm");
  const json fx = read_json(dir + "/cases.json");
  const Tally t = check_cases(*tf.tokenizer, fx["cases"], "bpe_legacy via GGUF");
  EXPECT_EQ(t.id_mismatches, 0u);
  EXPECT_EQ(t.decode_mismatches, 0u);

  // And back to a tokenizer.json (copy_tokenizer_files of a GGUF model): HF's ids again.
  const std::string out = testing::TempDir() + "/spm_from_gguf";
  mf::copy_tokenizer_files(path, out);
  const auto again = mf::load_hf_tokenizer(out + "/tokenizer.json");
  const Tally t2 = check_cases(*again, fx["cases"], "bpe_legacy via GGUF and back to tokenizer.json");
  EXPECT_EQ(t2.id_mismatches, 0u);
}

}  // namespace
