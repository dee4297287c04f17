// Mixing unified records: duplicates, caps and ratios, the seeded shuffle, the per-domain split,
// the files `moeforge data mix` writes and reads (bad lines as file:line), and the stats table.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/mapped_file.h"
#include "data/count_table.h"
#include "data/dataset_stats.h"
#include "data/mix.h"

namespace fs = std::filesystem;
using namespace mf;

namespace {

SftRecord rec(const std::string& source, const std::string& domain, const std::string& instruction,
              const std::string& output = "answer") {
  SftRecord r;
  r.source = source;
  r.domain = domain;
  r.instruction = instruction;
  r.output = output;
  return r;
}

// n distinct records of one source and domain.
std::vector<SftRecord> many(const std::string& source, const std::string& domain, int n) {
  std::vector<SftRecord> v;
  for (int i = 0; i < n; ++i) v.push_back(rec(source, domain, source + " question " + std::to_string(i)));
  return v;
}

std::vector<SftRecord> concat(std::initializer_list<std::vector<SftRecord>> parts) {
  std::vector<SftRecord> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

size_t count_source(const std::vector<SftRecord>& v, const std::string& source) {
  return size_t(std::count_if(v.begin(), v.end(), [&](const SftRecord& r) { return r.source == source; }));
}

std::string dump(const std::vector<SftRecord>& v) {
  std::string s;
  for (const SftRecord& r : v) s += to_json(r).dump() + "\n";
  return s;
}

TEST(DataMix, DuplicatesUpToCaseAndWhitespaceKeepTheFirst) {
  std::vector<SftRecord> in{rec("a", "Coder", "Sort a list", "sorted(x)"), rec("b", "Coder", "  sort A\n list ", "sorted(x)"),
                            rec("b", "Coder", "Sort a list", "sorted(x) "), rec("b", "Coder", "Sort a list", "x.sort()")};
  EXPECT_EQ(dedupe_key(in[0]), dedupe_key(in[1]));
  MixOptions o;
  o.split = {1, 0, 0};
  const MixResult m = mix_records(in, o);
  EXPECT_EQ(m.duplicates, 2);
  ASSERT_EQ(m.train.size(), 2u);
  EXPECT_EQ(m.unique.at("a"), 1);  // the first of the three copies, from source a
  EXPECT_EQ(m.unique.at("b"), 1);  // the different answer
}

TEST(DataMix, SameSeedSameFilesOtherSeedOtherOrder) {
  const auto in = concat({many("a", "Coder", 40), many("b", "Writer", 30)});
  MixOptions o;
  o.seed = 7;
  const MixResult x = mix_records(in, o), y = mix_records(in, o);
  EXPECT_EQ(dump(x.train), dump(y.train));
  EXPECT_EQ(dump(x.validation), dump(y.validation));
  EXPECT_EQ(dump(x.test), dump(y.test));
  o.seed = 8;
  const MixResult z = mix_records(in, o);
  EXPECT_NE(dump(x.train), dump(z.train));
  EXPECT_EQ(x.train.size(), z.train.size());
}

TEST(DataMix, CapsAndRatiosPerSource) {
  const auto in = concat({many("big", "Actor", 100), many("small", "Writer", 20), many("half", "Coder", 40)});
  MixOptions o;
  o.cap["big"] = 30;
  o.ratio["small"] = 3;
  o.ratio["half"] = 0.5;
  o.split = {0.8, 0.1, 0.1};
  const MixResult m = mix_records(in, o);
  EXPECT_EQ(m.kept.at("big"), 30);
  EXPECT_EQ(m.kept.at("half"), 20);
  EXPECT_EQ(m.kept.at("small"), 20);
  const size_t small_held = count_source(m.validation, "small") + count_source(m.test, "small");
  EXPECT_EQ(small_held, 4u);                                   // 2 + 2 of 20, each once
  EXPECT_EQ(count_source(m.train, "small"), (20 - small_held) * 3);  // repeated in train only
  EXPECT_EQ(count_source(m.train, "big") + count_source(m.validation, "big") + count_source(m.test, "big"), 30u);

  MixOptions bad;
  bad.cap["nosuch"] = 3;
  try {
    mix_records(in, bad);
    FAIL() << "no error for an unknown source";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--cap nosuch: no records from a source called 'nosuch' (sources: big, half, small)"),
              std::string::npos)
        << e.what();
  }
}

TEST(DataMix, EveryDomainIsSplitWithoutOverlap) {
  const auto in = concat({many("a", "Actor", 200), many("b", "Writer", 5), many("c", "Thinker", 2),
                          many("d", "Guardian", 1)});
  const MixResult m = mix_records(in, MixOptions{});
  const CountTable t = mix_count_table(m);
  EXPECT_EQ(t.at("Actor", "validation"), 10);
  EXPECT_EQ(t.at("Actor", "test"), 10);
  EXPECT_EQ(t.at("Actor", "train"), 180);
  EXPECT_EQ(t.at("Writer", "validation"), 1);  // rounded 0.25 -> at least one
  EXPECT_EQ(t.at("Writer", "test"), 1);
  EXPECT_EQ(t.at("Writer", "train"), 3);
  EXPECT_EQ(t.at("Thinker", "validation"), 1);  // two records: one validates, one trains
  EXPECT_EQ(t.at("Thinker", "train"), 1);
  EXPECT_EQ(t.at("Guardian", "train"), 1);  // a single record trains
  std::set<std::string> seen;
  for (const auto* split : {&m.train, &m.validation, &m.test})
    for (const SftRecord& r : *split) EXPECT_TRUE(seen.insert(r.instruction).second) << r.instruction;
  EXPECT_EQ(seen.size(), in.size());
}

TEST(DataMix, SplitFractionsAreChecked) {
  EXPECT_EQ(parse_split("0.8,0.1,0.1"), (std::array<double, 3>{0.8, 0.1, 0.1}));
  for (const char* bad : {"0.9,0.1", "0.5,0.5,0.5", "0.9,x,0.1", "1,0,0,0", "-0.1,0.6,0.5"})
    EXPECT_THROW(parse_split(bad), Error) << bad;
}

class DataMixFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moeforge_mix_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(DataMixFiles, WritesSplitsAndCountsAndSkipsTextFiles) {
  std::string a, b;
  for (int i = 0; i < 30; ++i)
    a += "{\"instruction\": \"q" + std::to_string(i) + "\", \"output\": \"o\", \"domain\": \"Coder\", \"source\": \"a\"}\n";
  for (int i = 0; i < 10; ++i)
    b += "{\"instruction\": \"w" + std::to_string(i) + "\", \"output\": \"o\", \"domain\": \"Writer\"}\n";
  const auto fa = write("a.jsonl", a), fb = write("b.jsonl", b), ft = write("wiki.jsonl", "{\"text\": \"doc\"}\n");
  std::ostringstream progress;
  MixOptions o;
  o.seed = 3;
  const MixResult m = mix_files({fa, fb, ft}, (dir_ / "mix").string(), o, false, progress);
  EXPECT_NE(progress.str().find("skipping " + ft), std::string::npos) << progress.str();
  EXPECT_EQ(m.train.size() + m.validation.size() + m.test.size(), 40u);
  EXPECT_EQ(count_source(m.train, "b") + count_source(m.validation, "b") + count_source(m.test, "b"), 10u);  // stem
  const std::string train = read_text_file((dir_ / "mix" / "train.jsonl").string());
  EXPECT_EQ(train, dump(m.train));
  const nlohmann::json counts = nlohmann::json::parse(read_text_file((dir_ / "mix" / "counts.json").string()));
  EXPECT_EQ(counts["counts"]["rows"]["Writer"]["validation"], 1);
  EXPECT_EQ(counts["counts"]["total"]["total"], 40);
  // Again with the same seed: byte-identical files.
  mix_files({fa, fb, ft}, (dir_ / "again").string(), o, false, progress);
  for (const char* f : {"train.jsonl", "validation.jsonl", "test.jsonl"})
    EXPECT_EQ(read_text_file((dir_ / "mix" / f).string()), read_text_file((dir_ / "again" / f).string())) << f;
}

TEST_F(DataMixFiles, BadLinesNameFileAndLineUnlessSkipped) {
  const auto f = write("u.jsonl",
                       "{\"instruction\": \"a\", \"output\": \"b\", \"domain\": \"Coder\", \"source\": \"u\"}\n"
                       "{\"instruction\": \"c\", \"output\": \"d\"}\n"
                       "{\"instruction\": \"e\", \"output\": \"f\", \"domain\": \"Coder\", \"history\": 3}\n"
                       "{oops\n");
  std::ostringstream progress;
  try {
    mix_files({f}, (dir_ / "mix").string(), MixOptions{}, false, progress);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("u.jsonl:2: no \"domain\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--skip-bad"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "mix" / "train.jsonl"));
  const MixResult m = mix_files({f}, (dir_ / "mix").string(), MixOptions{}, true, progress);
  EXPECT_EQ(m.train.size() + m.validation.size() + m.test.size(), 1u);
  EXPECT_NE(progress.str().find("skipped 3 bad records"), std::string::npos) << progress.str();
  EXPECT_NE(progress.str().find("u.jsonl:4: malformed JSON"), std::string::npos) << progress.str();
}

TEST(CountTableText, AlignsAndTotals) {
  CountTable t("source", {"Coder", "Writer"});
  t.add("alpaca", "Coder", 3);
  t.add("alpaca", "Writer", 12);
  t.add("gsm8k", "Thinker", 7);
  EXPECT_EQ(t.render(),
            "source  Coder  Writer  Thinker  total\n"
            "alpaca      3      12        0     15\n"
            "gsm8k       0       0        7      7\n"
            "total       3      12        7     22\n");
  const nlohmann::json j = t.to_json();
  EXPECT_EQ(j["rows"]["gsm8k"]["total"], 7);
  EXPECT_EQ(j["row_names"], nlohmann::json({"alpaca", "gsm8k"}));
}

TEST_F(DataMixFiles, StatsCountSourcesDomainsAndLengths) {
  const auto f = write("s.jsonl",
                       "{\"instruction\": \"abcd\", \"output\": \"xy\", \"domain\": \"Coder\", \"source\": \"a\"}\n"
                       "{\"instruction\": \"ab\", \"input\": \"c\", \"output\": \"xyzw\", \"domain\": \"Coder\", "
                       "\"source\": \"a\", \"history\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                       "{\"role\": \"assistant\", \"content\": \"yo\"}]}\n"
                       "{\"instruction\": \"q\", \"output\": \"a\", \"domain\": \"Writer\", \"source\": \"b\"}\n");
  const auto t = write("t.jsonl", "{\"text\": \"12345\"}\n{\"text\": \"1\"}\n");
  const DatasetStats s = dataset_stats({f, t});
  EXPECT_EQ(s.counts.at("a", "Coder"), 2);
  EXPECT_EQ(s.counts.at("b", "Writer"), 1);
  EXPECT_EQ(s.prompt.at("Coder").max, 5);  // "ab\n\nc"
  EXPECT_DOUBLE_EQ(s.answer.at("Coder").mean, 3.0);
  EXPECT_DOUBLE_EQ(s.history_turns.at("Coder"), 1.0);
  EXPECT_EQ(s.documents.at(t).count, 2);
  EXPECT_EQ(s.documents.at(t).max, 5);
  const std::string text = render_dataset_stats(s);
  EXPECT_NE(text.find("2 documents"), std::string::npos) << text;
  EXPECT_NE(text.find("history"), std::string::npos) << text;
}

}  // namespace
