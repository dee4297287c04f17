// SentencePiece tokenizers without a reference package: hand-made vocabularies whose ids are
// worked out by hand, the built-in pre-tokenizer fast paths against PCRE2 running the same
// regexes, and hostile tokenizer.model files and GGUF vocabularies (an error naming the file,
// never a crash).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/regex_split.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

const std::string kSpace(mf::kSpmSpace);

// --- a minimal protobuf writer for tokenizer.model files -------------------------------------

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(v | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}
void field_varint(std::string& out, uint32_t field, uint64_t v) {
  varint(out, uint64_t(field) << 3);
  varint(out, v);
}
void field_bytes(std::string& out, uint32_t field, const std::string& b) {
  varint(out, (uint64_t(field) << 3) | 2);
  varint(out, b.size());
  out += b;
}
void field_float(std::string& out, uint32_t field, float f) {
  varint(out, (uint64_t(field) << 3) | 5);
  char buf[4];
  std::memcpy(buf, &f, 4);
  out.append(buf, 4);
}

struct Piece {
  std::string text;
  float score;
  int type;
};

// <unk> <s> </s>, 256 byte pieces, then `normal`.
std::vector<Piece> llama_like_pieces(const std::vector<std::pair<std::string, float>>& normal) {
  std::vector<Piece> p = {{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    p.push_back({buf, 0, 6});
  }
  for (const auto& [t, s] : normal) p.push_back({t, s, 1});
  return p;
}

std::string model_proto(const std::vector<Piece>& pieces, int model_type, bool byte_fallback, bool add_dummy_prefix,
                        bool remove_extra) {
  std::string out;
  for (const Piece& p : pieces) {
    std::string m;
    field_bytes(m, 1, p.text);
    field_float(m, 2, p.score);
    field_varint(m, 3, uint64_t(p.type));
    field_bytes(out, 1, m);
  }
  std::string trainer;
  field_varint(trainer, 3, uint64_t(model_type));
  field_varint(trainer, 35, byte_fallback);
  field_bytes(out, 2, trainer);
  std::string norm;
  field_bytes(norm, 1, "identity");
  field_varint(norm, 3, add_dummy_prefix);
  field_varint(norm, 4, remove_extra);
  field_bytes(out, 3, norm);
  return out;
}

std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string dir = testing::TempDir() + "/spm_unit";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::vector<std::pair<std::string, float>> hello_vocab() {
  return {{kSpace, -1}, {"h", -2}, {"e", -3}, {"l", -4}, {"o", -5}, {kSpace + "h", -6},
          {"ll", -7},  {kSpace + "he", -8}, {"llo", -9}, {kSpace + "hello", -10}};
}

// --- SentencePiece BPE by scores (tokenizer.model and llama.cpp's GGUF path) --------------------

TEST(SpmBpe, MergesByScoreAndFallsBackToBytes) {
  const auto pieces = llama_like_pieces(hello_vocab());
  const auto tok = mf::make_spm_tokenizer(
      mf::spm_config_from_model_file(write_file("hello.model", model_proto(pieces, 2, true, true, false))));
  const int32_t first_normal = 259;
  // "▁hello" is one piece; the dummy prefix is added; decode drops it again.
  EXPECT_EQ(tok->encode("hello", false), std::vector<int32_t>{first_normal + 9});
  EXPECT_EQ(tok->decode(tok->encode("hello", false)), "hello");
  // 'i' has no piece: its byte 0x69 -> <0x69> (id 3 + 0x69).
  EXPECT_EQ(tok->encode("hi", false), (std::vector<int32_t>{first_normal + 5, 3 + 0x69}));
  // A two-byte character through its bytes, decoded and streamed back whole.
  const auto ids = tok->encode("h\xC3\xA9", false);
  EXPECT_EQ(ids, (std::vector<int32_t>{first_normal + 5, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->decode(ids), "h\xC3\xA9");
  mf::StreamDecoder stream(*tok, true);
  EXPECT_EQ(stream.push(ids[0]), "h");  // the opening token loses its "▁"
  EXPECT_EQ(stream.push(ids[1]), "");   // half a character is held back
  EXPECT_EQ(stream.push(ids[2]), "\xC3\xA9");
  // Spaces are kept (remove_extra_whitespaces off, Llama-2's setting): "  hello" -> ▁ ▁hello.
  EXPECT_EQ(tok->encode(" hello", false), (std::vector<int32_t>{first_normal, first_normal + 9}));
  EXPECT_EQ(tok->decode(tok->encode(" hello", false)), " hello");
  // Control pieces are special tokens when parsing specials, and decode only without skipping.
  EXPECT_EQ(tok->encode("<s>hello", true), (std::vector<int32_t>{1, first_normal + 9}));
  EXPECT_EQ(tok->bos_id, 1);
  EXPECT_TRUE(tok->add_bos);
  EXPECT_EQ(tok->decode(std::vector<int32_t>{1, first_normal + 9}, true), "hello");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{1, first_normal + 9}, false), "<s> hello");
}

TEST(SpmBpe, RemoveExtraWhitespacesCollapsesSpaces) {
  const auto pieces = llama_like_pieces(hello_vocab());
  const auto tok = mf::make_spm_tokenizer(
      mf::spm_config_from_model_file(write_file("collapse.model", model_proto(pieces, 2, true, true, true))));
  EXPECT_EQ(tok->encode("   hello   ", false), std::vector<int32_t>{259 + 9});
  EXPECT_TRUE(tok->encode("    ", false).empty());
}

TEST(SpmBpe, AContinuationGetsNoSpacePrefixOfItsOwn) {
  // SFT encodes a conversation span by span (data/sft_tokenize): the answer " hello" after the
  // prompt "hi" must be the tokens it is inside "hi hello", not " hello" encoded as a new text.
  const int32_t first_normal = 259;
  for (bool remove_extra : {false, true}) {
    const auto pieces = llama_like_pieces(hello_vocab());
    const auto tok = mf::make_spm_tokenizer(mf::spm_config_from_model_file(
        write_file(remove_extra ? "cont_collapse.model" : "cont.model", model_proto(pieces, 2, true, true, remove_extra))));
    const std::vector<int32_t> whole = tok->encode("hi hello", false);
    std::vector<int32_t> spans = tok->encode("hi", false);
    const std::vector<int32_t> answer = tok->encode_continuation(" hello", false);
    spans.insert(spans.end(), answer.begin(), answer.end());
    EXPECT_EQ(spans, whole) << "remove_extra_whitespaces " << remove_extra;
    EXPECT_EQ(answer, std::vector<int32_t>{first_normal + 9});                       // ▁hello
    // As a new text: the dummy prefix, then ▁hello (collapsing whitespace strips the space first).
    const std::vector<int32_t> fresh = remove_extra ? std::vector<int32_t>{first_normal + 9}
                                                    : std::vector<int32_t>{first_normal, first_normal + 9};
    EXPECT_EQ(tok->encode(" hello", false), fresh);
    // A continuation with no space of its own starts mid-word, as in "hihello".
    EXPECT_EQ(tok->encode_continuation("hello", false)[0], first_normal + 1);  // h
    // After a special token a segment is a new text again: the prefix comes back.
    EXPECT_EQ(tok->encode_continuation("x<s>hello", true).back(), first_normal + 9);
  }
}

TEST(SpmUnigram, ViterbiPicksTheBestSegmentationAndFusesUnknowns) {
  // "▁ab" costs -1 as one piece, -1.5 + -1.5 as two: one piece wins. Without byte fallback a
  // run of unknown characters is one <unk>.
  const std::vector<Piece> pieces = {{"<unk>", 0, 2},         {"<s>", 0, 3},     {"</s>", 0, 3},
                                     {kSpace, -1.5f, 1},     {kSpace + "a", -1.5f, 1}, {"b", -1.5f, 1},
                                     {kSpace + "ab", -1.0f, 1}, {"a", -2, 1}};
  const auto tok = mf::make_spm_tokenizer(
      mf::spm_config_from_model_file(write_file("uni.model", model_proto(pieces, 1, false, true, true))));
  EXPECT_EQ(tok->encode("ab", false), std::vector<int32_t>{6});
  EXPECT_EQ(tok->encode("ab xyz", false), (std::vector<int32_t>{6, 3, 0}));
  EXPECT_EQ(tok->encode("abxyzab", false), (std::vector<int32_t>{6, 0, 7, 5}));
}

// --- GGUF "llama" vocabularies ----------------------------------------------------------------

mf::BpeVocab gguf_vocab() {
  mf::BpeVocab v;
  v.model = "llama";
  v.source = "test.gguf";
  for (const Piece& p : llama_like_pieces(hello_vocab())) {
    v.tokens.push_back(p.text);
    v.scores.push_back(p.score);
    v.token_types.push_back(p.type);
  }
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0;
  v.add_bos = true;
  return v;
}

TEST(SpmGguf, SpacePrefixAfterEverySpecialTokenAsLlamaCpp) {
  const auto tok = mf::make_bpe_tokenizer(gguf_vocab());
  EXPECT_EQ(tok->kind, "spm");
  EXPECT_EQ(tok->encode("hello</s>hello", true), (std::vector<int32_t>{268, 2, 268}));
  EXPECT_EQ(mf::encode_for_model(*tok, "hello"), (std::vector<int32_t>{1, 268}));
  mf::BpeVocab v = gguf_vocab();
  v.add_space_prefix = false;
  // h e l l o -> "ll" (-7) -> "llo" (-9); no "▁" so no "▁he".
  EXPECT_EQ(mf::make_bpe_tokenizer(v)->encode("hello", true), (std::vector<int32_t>{260, 261, 267}));
}

void expect_error(const std::function<void()>& f, const std::string& needle, const std::string& file) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << "does not name " << file << ": " << e.what();
  }
}

TEST(SpmGguf, MalformedVocabulariesAreRefusedByName) {
  auto make = [](mf::BpeVocab v) { mf::make_bpe_tokenizer(std::move(v)); };
  mf::BpeVocab v = gguf_vocab();
  v.scores.pop_back();
  expect_error([&] { make(v); }, "tokenizer.ggml.scores", "test.gguf");
  v = gguf_vocab();
  v.token_types[5] = 9;
  expect_error([&] { make(v); }, "token_type[5]", "test.gguf");
  v = gguf_vocab();
  v.eos_id = 100000;
  expect_error([&] { make(v); }, "eos_token_id", "test.gguf");
  v = gguf_vocab();
  v.model = "t5";
  expect_error([&] { make(v); }, "'t5'", "test.gguf");
  v = gguf_vocab();
  v.tokens[265] = "";
  expect_error([&] { make(v); }, "tokens[265]", "test.gguf");
}

// --- hostile tokenizer.model files --------------------------------------------------------------

TEST(SpmModelFile, MalformedFilesAreRefusedByName) {
  auto load = [](const std::string& path) { return [path] { mf::spm_config_from_model_file(path); }; };
  const std::string good = model_proto(llama_like_pieces(hello_vocab()), 2, true, true, false);
  std::string p;
  p = write_file("empty.model", "");
  expect_error(load(p), "no pieces", p);
  p = write_file("truncated.model", good.substr(0, good.size() / 2));
  expect_error(load(p), "remain", p);
  p = write_file("varint.model", std::string(12, '\xFF'));
  expect_error(load(p), "varint", p);
  std::string big;
  varint(big, (1 << 3) | 2);
  varint(big, uint64_t(1) << 40);
  p = write_file("length.model", big);
  expect_error(load(p), "claims", p);
  std::string group;
  varint(group, (7 << 3) | 3);
  p = write_file("group.model", group);
  expect_error(load(p), "wire type 3", p);
  p = write_file("word.model", model_proto(llama_like_pieces(hello_vocab()), 3, true, true, false));
  expect_error(load(p), "WORD", p);
  auto pieces = llama_like_pieces(hello_vocab());
  pieces[265].type = 9;
  p = write_file("type.model", model_proto(pieces, 2, true, true, false));
  expect_error(load(p), "type 9", p);
  pieces = llama_like_pieces(hello_vocab());
  pieces[265].text.clear();
  p = write_file("emptypiece.model", model_proto(pieces, 2, true, true, false));
  expect_error(load(p), "is empty", p);
  pieces = llama_like_pieces(hello_vocab());
  pieces[265].type = 4;
  p = write_file("user.model", model_proto(pieces, 2, true, true, false));
  expect_error(load(p), "user-defined", p);
  std::string bad_id = good;
  std::string trainer;
  field_varint(trainer, 42, 5000);  // eos_id beyond the pieces
  field_bytes(bad_id, 2, trainer);
  p = write_file("eos.model", bad_id);
  expect_error(load(p), "eos_id", p);
  std::string charsmap = good;
  std::string norm;
  field_bytes(norm, 1, "nmt_nfkc");
  field_bytes(norm, 2, std::string(100, 'x'));
  field_bytes(charsmap, 3, norm);
  p = write_file("nfkc.model", charsmap);
  expect_error(load(p), "nmt_nfkc", p);
}

// Random corruptions of a valid file: each loads or is refused with mf::Error, never a crash.
TEST(SpmModelFile, CorruptedFilesNeverCrash) {
  const std::string good = model_proto(llama_like_pieces(hello_vocab()), 2, true, true, false);
  std::mt19937 rng(7);
  int refused = 0, loaded = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::string bytes = good;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 3) {
        case 0: bytes[at] = char(rng()); break;
        case 1: bytes.erase(at, 1 + rng() % 8); break;
        default: bytes.insert(at, 1, char(rng()));
      }
      if (bytes.empty()) bytes = "x";
    }
    const std::string path = write_file("fuzz.model", bytes);
    try {
      const auto tok = mf::make_spm_tokenizer(mf::spm_config_from_model_file(path));
      tok->decode(tok->encode("hello world \xC3\xA9 <s>", true));
      ++loaded;
    } catch (const mf::Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_EQ(refused + loaded, 400);
}

// --- the built-in pre-tokenizer matchers against PCRE2 on the same regexes -----------------------

std::vector<std::string> sample_texts() {
  std::vector<std::string> t = {
      "", "Hello world", "  leading and trailing  ", "multiple   spaces\t\ttabs\n\nnewlines\r\n\r\nCRLF",
      "It's, I'M, you're, WE'VE, they'll, HE'D, x'ſt 'Ll", "Numbers 1 12 123 1234 12345 ١٢٣ Ⅻ x² ½",
      "Punctuation!!! ??? ... --- ((())) {{}} @#$%^&*_+=|\\/<>~`", "def f(x):\n    return x ** 2  # c\n",
      "日本語のテキスト。한국어 문장입니다. Привет, мир! مرحبا", "Emoji 😀👍🏽 👨‍👩‍👧‍👦 🇫🇷 1️⃣",
      "Unicode spaces:\u00a0nbsp\u3000ideo\u2003em\u2028line\u2029para\u0085nel", "Zero\u200bwidth\u200d\ufeff",
      "a\u0301\u0302 ǅungla ʰmod", "  \n  \n\t \n", "x   \n  y", "\n\n\n", "   ", "'s's 's"};
  // Every 23rd code point of the BMP, so each class table is reached. Not beyond: moeforge's
  // tables are Unicode 16, PCRE2 10.42's are Unicode 15, and the two legitimately differ for
  // the supplementary-plane scripts added since (Kirat Rai U+16D00, CJK extension I U+2EBF0...).
  std::string sweep;
  for (char32_t cp = 0x20; cp < 0x10000; cp += 23) {
    if (cp >= 0xD800 && cp < 0xE000) continue;
    mf::unicode::append_utf8(sweep, cp);
    sweep += (cp % 3 == 0) ? " " : (cp % 3 == 1) ? "a1" : "";
    if (sweep.size() > 600) {
      t.push_back(sweep);
      sweep.clear();
    }
  }
  t.push_back(sweep);
  return t;
}

TEST(PreTokenizer, FastPathsSplitExactlyAsPcre2) {
  const std::pair<mf::SplitPattern, const char*> patterns[] = {
      {mf::SplitPattern::Gpt2, R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"},
      {mf::SplitPattern::Llama3,
       R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
      {mf::SplitPattern::Qwen2,
       R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}};
  size_t pieces = 0;
  for (const auto& [pattern, regex] : patterns) {
    ASSERT_EQ(mf::known_split_pattern(regex), pattern);
    const mf::RegexSplitter re(regex);
    for (const std::string& text : sample_texts()) {
      std::vector<std::string_view> fast, general;
      mf::split_by_pattern(text, pattern, fast);
      mf::split_by_regex(text, re, mf::SplitBehavior::Isolated, general);
      if (fast != general) {
        size_t k = 0;
        while (k < fast.size() && k < general.size() && fast[k] == general[k]) ++k;
        std::string cps;
        const std::string_view at = k < fast.size() ? fast[k] : std::string_view();
        for (size_t i = 0; i < at.size();) {
          const auto u = mf::unicode::decode_utf8(at, i);
          char buf[16];
          std::snprintf(buf, sizeof buf, "U+%04X ", unsigned(u.cp));
          cps += buf;
          i += u.length;
        }
        ADD_FAILURE() << regex << "\n  first different piece " << k << ": " << cps;
      }
      pieces += fast.size();
    }
  }
  EXPECT_GT(pieces, 1000u);
}

TEST(PreTokenizer, RegexBehaviorsAndBadPatterns) {
  const mf::RegexSplitter dash("-");
  auto split = [&](mf::SplitBehavior b) {
    std::vector<std::string_view> out;
    mf::split_by_regex("the-final--countdown", dash, b, out);
    return std::vector<std::string>(out.begin(), out.end());
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split(mf::SplitBehavior::Isolated), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split(mf::SplitBehavior::Removed), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split(mf::SplitBehavior::MergedWithPrevious), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split(mf::SplitBehavior::MergedWithNext), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split(mf::SplitBehavior::Contiguous), (V{"the", "-", "final", "--", "countdown"}));
  // Empty matches move on without producing pieces; invalid UTF-8 bytes stay as their own pieces.
  const mf::RegexSplitter maybe("a*");
  std::vector<std::string_view> out;
  mf::split_by_regex("baab\xFF" "a", maybe, mf::SplitBehavior::Isolated, out);
  EXPECT_EQ(std::vector<std::string>(out.begin(), out.end()), (V{"b", "aa", "b\xFF", "a"}));
  EXPECT_EQ(mf::regex_literal("a.b*(c)"), "a\\.b\\*\\(c\\)");
  try {
    mf::RegexSplitter bad("(?<unclosed");
    ADD_FAILURE() << "compiled";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not compile"), std::string::npos) << e.what();
  }
}

}  // namespace
