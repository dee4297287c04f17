// Tokenizer unit tests on hand-made vocabularies: pre-tokenizer splits, Unicode helpers, BPE
// merges, added tokens, invalid UTF-8, streaming decode, char tokenizer, error reporting.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using Pieces = std::vector<std::string>;

Pieces split(std::string_view text, mf::SplitPattern p) {
  std::vector<std::string_view> out;
  mf::split_by_pattern(text, p, out);
  return Pieces(out.begin(), out.end());
}

TEST(PreTokenize, Gpt2Pattern) {
  using mf::SplitPattern;
  EXPECT_EQ(split("Hello world", SplitPattern::Gpt2), (Pieces{"Hello", " world"}));
  EXPECT_EQ(split("a  b", SplitPattern::Gpt2), (Pieces{"a", " ", " b"}));
  EXPECT_EQ(split("it's 'S", SplitPattern::Gpt2), (Pieces{"it", "'s", " '", "S"}));
  EXPECT_EQ(split("x123 45", SplitPattern::Gpt2), (Pieces{"x", "123", " 45"}));
  EXPECT_EQ(split("a\n\nb  ", SplitPattern::Gpt2), (Pieces{"a", "\n", "\n", "b", "  "}));
  EXPECT_EQ(split("\tb", SplitPattern::Gpt2), (Pieces{"\t", "b"}));
  EXPECT_EQ(split("?!  ..", SplitPattern::Gpt2), (Pieces{"?!", " ", " .."}));
  EXPECT_EQ(split("日本 語", SplitPattern::Gpt2), (Pieces{"日本", " 語"}));
  EXPECT_EQ(split("", SplitPattern::Gpt2), Pieces{});
}

TEST(PreTokenize, Llama3AndQwen2Patterns) {
  using mf::SplitPattern;
  EXPECT_EQ(split("IT'S 12345", SplitPattern::Llama3), (Pieces{"IT", "'S", " ", "123", "45"}));
  EXPECT_EQ(split("IT'S 12345", SplitPattern::Qwen2), (Pieces{"IT", "'S", " ", "1", "2", "3", "4", "5"}));
  EXPECT_EQ(split("x'\xC5\xBFt", SplitPattern::Llama3), (Pieces{"x", "'\xC5\xBF", "t"}));  // long s folds to s
  EXPECT_EQ(split("(hello", SplitPattern::Llama3), (Pieces{"(hello"}));
  EXPECT_EQ(split("a.\n\nb", SplitPattern::Llama3), (Pieces{"a", ".\n\n", "b"}));
  EXPECT_EQ(split("a \n \n b", SplitPattern::Llama3), (Pieces{"a", " \n \n", " b"}));
}

TEST(PreTokenize, DigitsIndividual) {
  std::vector<std::string_view> out;
  mf::split_digits("ab12 3", true, out);
  EXPECT_EQ(Pieces(out.begin(), out.end()), (Pieces{"ab", "1", "2", " ", "3"}));
  out.clear();
  mf::split_digits("ab12 3", false, out);
  EXPECT_EQ(Pieces(out.begin(), out.end()), (Pieces{"ab", "12", " ", "3"}));
}

TEST(PreTokenize, UnknownRegexIsAnError) {
  EXPECT_THROW(mf::split_pattern_from_regex("\\w+"), mf::Error);
}

TEST(Unicode, ClassesAndUtf8) {
  using mf::unicode::char_class;
  using mf::unicode::CharClass;
  EXPECT_EQ(char_class(U'a'), CharClass::Letter);
  EXPECT_EQ(char_class(U'é'), CharClass::Letter);
  EXPECT_EQ(char_class(U'語'), CharClass::Letter);
  EXPECT_EQ(char_class(U'٣'), CharClass::Number);
  EXPECT_EQ(char_class(U'Ⅻ'), CharClass::Number);
  EXPECT_EQ(char_class(0x3000), CharClass::Whitespace);
  EXPECT_EQ(char_class(0x200B), CharClass::Other);  // zero width space is not White_Space
  EXPECT_EQ(char_class(U'😀'), CharClass::Other);
  EXPECT_EQ(char_class(0x1C89), CharClass::Letter);  // added in Unicode 16, as Oniguruma knows it

  auto u = mf::unicode::decode_utf8("\xED\xA0\x80", 0);  // a surrogate: ill-formed
  EXPECT_FALSE(u.valid);
  EXPECT_EQ(u.length, 1);
  u = mf::unicode::decode_utf8("\xC0\xAF", 0);  // overlong
  EXPECT_FALSE(u.valid);
  u = mf::unicode::decode_utf8("\xF0\x9F\x98\x80", 0);
  EXPECT_TRUE(u.valid);
  EXPECT_EQ(u.cp, 0x1F600u);
  EXPECT_EQ(mf::unicode::complete_utf8_prefix("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(mf::unicode::complete_utf8_prefix("ab\xF0\x9F\x98\x80"), 6u);
  EXPECT_EQ(mf::unicode::complete_utf8_prefix("ab\xC3"), 2u);
  EXPECT_EQ(mf::unicode::complete_utf8_prefix("ab\x80"), 3u);  // stray continuation: nothing to wait for
}

TEST(Unicode, Nfc) {
  using mf::unicode::nfc;
  EXPECT_EQ(nfc("Cafe\xCC\x81"), "Caf\xC3\xA9");                     // e + acute -> é
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(nfc("a\xCC\x81\xCC\xA3"), "\xE1\xBA\xA1\xCC\x81");        // reordered: ạ + acute
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");                         // Angstrom sign -> Å
  EXPECT_EQ(nfc("plain ascii"), "plain ascii");
  EXPECT_EQ(nfc("bad\xFF" "e\xCC\x81"), "bad\xFF\xC3\xA9");           // invalid byte passes through
}

TEST(ByteLevel, MappingIsAReversiblePermutation) {
  EXPECT_EQ(mf::byte_level::encode(" "), "\xC4\xA0");   // Ġ
  EXPECT_EQ(mf::byte_level::encode("\n"), "\xC4\x8A");  // Ċ
  EXPECT_EQ(mf::byte_level::encode("a"), "a");
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(mf::byte_level::decode(mf::byte_level::encode(all)), all);
  EXPECT_FALSE(mf::byte_level::decode("\xE2\x82\xAC").has_value());  // € is not a byte char
}

// 256 byte tokens (in byte order) then the given extra tokens; merges as given.
mf::BpeVocab tiny_vocab(const std::vector<std::string>& extra, const std::vector<std::string>& merges) {
  mf::BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(mf::byte_level::encode(std::string(1, static_cast<char>(b))));
  for (const auto& t : extra) v.tokens.push_back(t);
  v.merges = merges;
  v.token_types.assign(v.tokens.size(), 1);
  return v;
}

TEST(Bpe, MergesByRank) {
  auto tok = mf::make_bpe_tokenizer(
      tiny_vocab({"he", "ll", "hell", "hello", "Ġh", "aa", "aaaa"}, {"h e", "l l", "he ll", "hell o", "Ġ h", "a a", "aa aa"}));
  const int32_t hello = *tok->token_to_id("hello");
  EXPECT_EQ(tok->encode("hello"), (std::vector<int32_t>{hello}));
  // " hello": "Ġh" (rank 4) loses to "h e" (rank 0): Ġ stays alone.
  EXPECT_EQ(tok->encode(" hello"), (std::vector<int32_t>{' ', hello}));
  const int32_t a4 = *tok->token_to_id("aaaa"), a2 = *tok->token_to_id("aa");
  EXPECT_EQ(tok->encode("aaaaaaa"), (std::vector<int32_t>{a4, a2, 'a'}));
  EXPECT_EQ(tok->token_bytes(*tok->token_to_id("Ġh")), " h");
  EXPECT_EQ(tok->decode(tok->encode("hello hello")), "hello hello");
}

TEST(Bpe, InvalidUtf8RoundTripsByteForByte) {
  auto tok = mf::make_bpe_tokenizer(tiny_vocab({"he"}, {"h e"}));
  for (std::string s : {std::string("\xFF"), std::string("a\xC3"), std::string("\xED\xA0\x80 x"),
                        std::string("\xC0\xAF\x80\x80 he"), std::string("ok \xE2\x82 he\xF0\x9F")}) {
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    EXPECT_EQ(tok->decode(tok->encode(s)), s) << "round " << round;
  }
}

TEST(Bpe, AddedTokensLongestMatchAndParseSpecial) {
  auto v = tiny_vocab({"<|im_start|>", "<|im", "<x>"}, {});
  v.token_types[256] = 3;  // control: special
  v.token_types[257] = 3;
  v.token_types[258] = 4;  // user-defined: always matched, not special
  auto tok = mf::make_bpe_tokenizer(v);
  EXPECT_EQ(tok->encode("<|im_start|>hi"), (std::vector<int32_t>{256, 'h', 'i'}));
  EXPECT_EQ(tok->encode("<|im_end|>"), (std::vector<int32_t>{257, '_', 'e', 'n', 'd', '|', '>'}));
  const auto plain = tok->encode("<|im_start|><x>", false);
  EXPECT_EQ(plain.back(), 258);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 256), 0);
  EXPECT_TRUE(tok->is_special(256));
  EXPECT_FALSE(tok->is_special(258));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{256, 'a', 258}, true), "a<x>");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{256, 'a'}), "<|im_start|>a");
}

TEST(Bpe, LongInputIsFast) {
  auto tok = mf::make_bpe_tokenizer(tiny_vocab({"ab", "abab"}, {"a b", "ab ab"}));
  std::string text;
  for (int i = 0; i < 100000; ++i) text += "ab";  // one 200 KB pre-token
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = tok->encode(text);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(ids.size(), 50000u);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(s, 20.0) << "merge loop looks quadratic";  // generous: sanitizer builds are slow
}

TEST(Bpe, BadVocabulariesAreClearErrors) {
  auto expect_error = [](mf::BpeVocab v, const std::string& needle) {
    try {
      mf::make_bpe_tokenizer(std::move(v));
      ADD_FAILURE() << "no error, expected: " << needle;
    } catch (const mf::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto v = tiny_vocab({}, {});
  v.pre = "mystery";
  expect_error(v, "mystery");
  expect_error(tiny_vocab({}, {"ab"}), "merges[0]");
  expect_error(tiny_vocab({}, {"a b"}), "not in the vocabulary");
  v = tiny_vocab({}, {});
  v.token_types.pop_back();
  expect_error(v, "token_type");
  v = tiny_vocab({}, {});
  v.eos_id = 9999;
  expect_error(v, "tokenizer.ggml.eos_token_id = 9999 is outside the vocabulary");
  v = tiny_vocab({}, {});
  v.tokens[5] = "\xff";
  expect_error(v, "tokenizer.ggml.tokens[5] is not UTF-8");
  expect_error(mf::BpeVocab{}, "empty");
  auto tok = mf::make_bpe_tokenizer(tiny_vocab({}, {}));
  EXPECT_THROW(tok->decode(std::vector<int32_t>{256}), mf::Error);
  EXPECT_THROW(tok->token_bytes(-1), mf::Error);
}

TEST(StreamDecoder, HoldsBackPartialCharacters) {
  auto tok = mf::make_bpe_tokenizer(tiny_vocab({}, {}));
  const std::string emoji = "\xF0\x9F\x98\x80";  // 😀 as four byte tokens
  const auto ids = tok->encode("a" + emoji + "b");
  ASSERT_EQ(ids.size(), 6u);
  mf::StreamDecoder dec(*tok);
  std::vector<std::string> outs;
  for (int32_t id : ids) outs.push_back(dec.push(id));
  EXPECT_EQ(outs, (std::vector<std::string>{"a", "", "", "", emoji, "b"}));
  EXPECT_EQ(dec.flush(), "");
  // An unfinished character comes out on flush.
  EXPECT_EQ(dec.push(ids[1]), "");
  EXPECT_EQ(dec.flush(), "\xF0");
}

TEST(StreamDecoder, SkipsSpecialTokens) {
  auto v = tiny_vocab({"<eos>"}, {});
  v.token_types[256] = 3;
  auto tok = mf::make_bpe_tokenizer(v);
  mf::StreamDecoder skip(*tok), keep(*tok, false);
  EXPECT_EQ(skip.push(256), "");
  EXPECT_EQ(keep.push(256), "<eos>");
}

TEST(CharTokenizer, RoundTripUnknownAndSaveLoad) {
  auto tok = mf::make_char_tokenizer("hello wörld 😀");
  EXPECT_EQ(tok->kind, "char");
  EXPECT_EQ(tok->pad_id, 0);
  EXPECT_EQ(tok->bos_id, 1);
  EXPECT_EQ(tok->eos_id, 2);
  EXPECT_EQ(tok->unk_id, 3);
  EXPECT_EQ(tok->vocab_size(), 4 + 10);  // h e l o ' ' w ö r d 😀
  // Ids follow code point order: ' ' first, 😀 last.
  EXPECT_EQ(tok->token_to_id(" "), 4);
  EXPECT_EQ(tok->token_to_id("😀"), 13);
  const std::string text = "hello 😀 world";
  EXPECT_EQ(tok->decode(tok->encode(text)), text);
  const auto ids = tok->encode("hex!");
  EXPECT_EQ(ids, (std::vector<int32_t>{*tok->token_to_id("h"), *tok->token_to_id("e"), 3, 3}));
  EXPECT_EQ(tok->encode("<bos>he<eos>"), (std::vector<int32_t>{1, *tok->token_to_id("h"), *tok->token_to_id("e"), 2}));
  EXPECT_EQ(tok->encode("<bos>", false).size(), 5u);  // '<' 'b' 'o' 's' '>' as text
  EXPECT_EQ(tok->decode(std::vector<int32_t>{1, 4, 2}, true), " ");
  EXPECT_EQ(tok->encode("\xFF").front(), 3);  // invalid UTF-8 -> <unk>

  const std::string path = ::testing::TempDir() + "/char_tok.json";
  mf::save_char_tokenizer(*tok, path);
  auto loaded = mf::load_char_tokenizer(path);
  EXPECT_EQ(loaded->vocab_size(), tok->vocab_size());
  EXPECT_EQ(loaded->encode(text), tok->encode(text));
  EXPECT_EQ(loaded->decode(loaded->encode(text)), text);

  auto bpe = mf::make_bpe_tokenizer(tiny_vocab({}, {}));
  EXPECT_THROW(mf::save_char_tokenizer(*bpe, path), mf::Error);
}

TEST(CharTokenizer, BadFilesAreClearErrors) {
  const std::string dir = ::testing::TempDir();
  auto load_error = [&](const std::string& text) -> std::string {
    const std::string path = dir + "/bad_char_tok.json";
    std::ofstream(path) << text;
    try {
      mf::load_char_tokenizer(path);
    } catch (const mf::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      return e.what();
    }
    return "";
  };
  EXPECT_NE(load_error("{oops").find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error(R"({"type": "bpe"})").find("not a char tokenizer"), std::string::npos);
  EXPECT_NE(load_error(R"({"type": "char", "specials": ["<pad>", "<bos>", "<eos>", "<unk>"], "chars": ["ab"]})")
                .find("exactly one UTF-8 character"),
            std::string::npos);
  EXPECT_NE(load_error(R"({"type": "char", "specials": ["<pad>", "<bos>", "<eos>", "<unk>"], "chars": ["a", "a"]})")
                .find("twice"),
            std::string::npos);
  EXPECT_NE(load_error(R"({"type": "char", "specials": ["<pad>"], "chars": []})").find("specials"), std::string::npos);
}

}  // namespace

// A tokenizer.json from a stranger's model: Sequences nested thousands deep are refused with an
// error naming the file, not followed until the stack runs out.
TEST(HfTokenizerJson, DeeplyNestedSequencesAreRefused) {
  const std::string dir = ::testing::TempDir() + "/nested_tok";
  std::filesystem::create_directories(dir);
  auto nested = [](const char* key, int depth) {
    std::string open, close;
    for (int i = 0; i < depth; ++i) {
      open += std::string(R"({"type": "Sequence", ")") + key + R"(": [)";
      close += "]}";
    }
    return open + close;
  };
  const std::string model = R"("model": {"type": "BPE", "vocab": {"a": 0}, "merges": []})";
  const std::string byte_level = R"("pre_tokenizer": {"type": "ByteLevel"})";
  struct Case {
    std::string body;
    const char* where;
  };
  const Case cases[] = {
      {"{" + model + ", " + byte_level + R"(, "normalizer": )" + nested("normalizers", 50000) + "}", "normalizer"},
      {"{" + model + R"(, "pre_tokenizer": )" + nested("pretokenizers", 50000) + "}", "pre_tokenizer"},
      {"{" + model + ", " + byte_level + R"(, "post_processor": )" + nested("processors", 50000) + "}",
       "post_processor"},
  };
  for (const Case& c : cases) {
    const std::string path = dir + "/tokenizer.json";
    std::ofstream(path) << c.body;
    try {
      mf::load_hf_tokenizer(path);
      ADD_FAILURE() << c.where << ": accepted";
    } catch (const mf::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos) << what;
      EXPECT_NE(what.find(c.where), std::string::npos) << what;
      EXPECT_NE(what.find("nested deeper than"), std::string::npos) << what;
    }
  }
}
