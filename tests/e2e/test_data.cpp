// `moeforge data` as a user runs it: convert a few small dataset files with a domain map, mix
// them into splits (twice, byte-identical), look at the stats, and get file:line errors for
// bad input (or a count with --skip-bad).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_run.h"

namespace {
using namespace mf::test;

class Data : public ::testing::Test {
 protected:
  void SetUp() override {
    if (binary().empty()) GTEST_SKIP() << "MOEFORGE_BIN not set (run through ctest)";
    dir_ = fs::temp_directory_path() / ("moeforge_data_e2e_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "raw");
    std::ofstream(dir_ / "domains.yaml") << "domains: [Coder, Thinker, Actor, Writer]\n"
                                            "sources:\n"
                                            "  alpaca:\n"
                                            "    default: Coder\n"
                                            "    rules: [{field: instruction, regex: 'poem', domain: Writer}]\n"
                                            "  gsm8k: Thinker\n"
                                            "  dailydialog: Actor\n";
    std::ofstream alpaca(dir_ / "raw" / "alpaca.json");
    alpaca << "[\n";
    for (int i = 0; i < 40; ++i)
      alpaca << "{\"instruction\": \"" << (i % 4 ? "Write code number " : "Write a poem number ") << i
             << "\", \"input\": \"\", \"output\": \"done " << i << "\"},\n";
    alpaca << "{\"instruction\": \"Write code number 1\", \"input\": \"\", \"output\": \"done 1\"}\n]\n";  // a repeat
    std::ofstream gsm(dir_ / "raw" / "gsm8k_train.jsonl");
    for (int i = 0; i < 30; ++i)
      gsm << "{\"question\": \"What is " << i << "+1?\", \"answer\": \"" << i << "+1 = <<" << i << "+1=" << i + 1
          << ">>" << i + 1 << "\\n#### " << i + 1 << "\"}\n";
    std::ofstream dd(dir_ / "raw" / "dailydialog_train.txt");
    for (int i = 0; i < 10; ++i) dd << "Hello , friend " << i << " ! __eou__ Hi ! How ' s it going ? __eou__ Fine , thanks " << i << " . __eou__\n";
    std::ofstream(dir_ / "raw" / "notes.txt") << "A short text.\n\nFor pretraining.\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> raw_files() const {
    return {(dir_ / "raw" / "alpaca.json").string(), (dir_ / "raw" / "gsm8k_train.jsonl").string(),
            (dir_ / "raw" / "dailydialog_train.txt").string(), (dir_ / "raw" / "notes.txt").string()};
  }
  RunResult convert(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"data", "convert"};
    for (const auto& f : raw_files()) args.push_back(f);
    args.push_back("-o");
    args.push_back((dir_ / "unified").string());
    args.push_back("--domains");
    args.push_back((dir_ / "domains.yaml").string());
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  }
  fs::path dir_;
};

TEST_F(Data, HelpForEverySubcommand) {
  auto r = run({"data", "--help"});
  EXPECT_EQ(r.rc, 0);
  for (const char* sub : {"convert", "mix", "stats"}) EXPECT_TRUE(has(r.out, sub)) << r.out;
  r = run({"data", "convert", "--help"});
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"--output", "--format", "--domains", "--tables", "--skip-bad", "dailydialog", "wikitext"})
    EXPECT_TRUE(has(r.out, s)) << s;
  r = run({"data", "mix", "--help"});
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"--seed", "--ratio", "--cap", "--split"}) EXPECT_TRUE(has(r.out, s)) << s;
  r = run({"data", "stats", "--help"});
  EXPECT_EQ(r.rc, 0) << r.err;
  r = run({"data", "frobnicate"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "unknown subcommand 'frobnicate'")) << r.err;
  r = run({"data", "convert", (dir_ / "raw" / "notes.txt").string()});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "--output")) << r.err;
}

TEST_F(Data, ConvertThenMixTwiceIdentically) {
  auto c = convert();
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_TRUE(has(c.out, "alpaca")) << c.out;
  EXPECT_TRUE(has(c.out, "summary.json")) << c.out;
  EXPECT_TRUE(has(c.err, "[4/4]")) << c.err;
  const auto summary = nlohmann::json::parse(slurp(dir_ / "unified" / "summary.json"));
  EXPECT_EQ(summary["instructions"]["rows"]["alpaca"]["Writer"], 10);  // the poems
  EXPECT_EQ(summary["instructions"]["rows"]["alpaca"]["Coder"], 31);   // 30 + the repeat, removed by mix
  EXPECT_EQ(summary["instructions"]["rows"]["dailydialog_train"]["Actor"], 20);
  EXPECT_TRUE(has(slurp(dir_ / "unified" / "gsm8k_train.jsonl"), "The answer is 30."));
  EXPECT_TRUE(has(slurp(dir_ / "unified" / "dailydialog_train.jsonl"), "How's it going?"));
  EXPECT_TRUE(has(slurp(dir_ / "unified" / "notes.jsonl"), "{\"text\":"));

  const auto mix = [&](const std::string& out) {
    std::vector<std::string> args{"data", "mix"};
    for (const char* f : {"alpaca", "gsm8k_train", "dailydialog_train", "notes"})
      args.push_back((dir_ / "unified" / (std::string(f) + ".jsonl")).string());
    for (const std::string& a : {std::string("-o"), (dir_ / out).string(), std::string("--seed"), std::string("5"),
                                 std::string("--cap"), std::string("gsm8k_train=20"), std::string("--split"),
                                 std::string("0.8,0.1,0.1")})
      args.push_back(a);
    return run(args);
  };
  auto m = mix("mix");
  ASSERT_EQ(m.rc, 0) << m.err;
  EXPECT_TRUE(has(m.out, "1 duplicates removed")) << m.out;
  EXPECT_TRUE(has(m.err, "skipping")) << m.err;  // notes.jsonl holds {"text"} documents
  const auto counts = nlohmann::json::parse(slurp(dir_ / "mix" / "counts.json"));
  for (const char* d : {"Coder", "Thinker", "Actor", "Writer"})
    EXPECT_GE(counts["counts"]["rows"][d]["validation"].get<int>(), 1) << d;
  EXPECT_EQ(counts["kept_per_source"]["gsm8k_train"], 20);
  ASSERT_EQ(mix("mix2").rc, 0);
  for (const char* f : {"train.jsonl", "validation.jsonl", "test.jsonl"}) {
    EXPECT_FALSE(slurp(dir_ / "mix" / f).empty()) << f;
    EXPECT_EQ(slurp(dir_ / "mix" / f), slurp(dir_ / "mix2" / f)) << f;
  }

  auto s = run({"data", "stats", (dir_ / "mix" / "train.jsonl").string()});
  ASSERT_EQ(s.rc, 0) << s.err;
  EXPECT_TRUE(has(s.out, "dailydialog_train")) << s.out;
  EXPECT_TRUE(has(s.out, "history")) << s.out;
}

TEST_F(Data, BadInputNamesFileAndLine) {
  std::ofstream(dir_ / "raw" / "gsm8k_train.jsonl", std::ios::app) << "{\"question\": \"q\"}\n{broken\n";
  auto r = convert();
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "gsm8k_train.jsonl:31: missing field \"answer\"")) << r.err;
  r = convert({"--skip-bad"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "skipped bad records in")) << r.out;
  EXPECT_TRUE(has(r.out, "gsm8k_train.jsonl:32: malformed JSON")) << r.out;

  std::ofstream(dir_ / "domains.yaml", std::ios::app) << "  extra: Poet\n";
  r = convert();
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "domains.yaml:8: sources.extra: unknown domain 'Poet'")) << r.err;

  r = run({"data", "mix", (dir_ / "raw" / "gsm8k_train.jsonl").string(), "-o", (dir_ / "m").string()});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "gsm8k_train.jsonl:1: missing field \"instruction\"")) << r.err;
  r = run({"data", "mix", (dir_ / "raw" / "gsm8k_train.jsonl").string(), "-o", (dir_ / "m").string(), "--split",
           "0.5,0.5"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "--split")) << r.err;
}

}  // namespace
