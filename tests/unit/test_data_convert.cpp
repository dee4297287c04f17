// Dataset converters on small hand-written files: each format's fields and clean-ups, format
// detection, the domain map, and bad input reported as file:line (or counted with skip).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/convert/convert_files.h"
#include "data/convert/detokenize.h"
#include "data/convert/formats.h"
#include "data/convert/spider_schema.h"
#include "data/convert/text_clean.h"
#include "data/domain_map.h"

namespace fs = std::filesystem;
using namespace mf;

namespace {

class DataConvert : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moeforge_convert_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  // Converts through the registry, detecting the format, and checks what was detected.
  Converted convert(const std::string& path, const std::string& expected_format, bool skip_bad = false,
                    int64_t* skipped = nullptr) {
    const Format& f = detect_data_format(sample_file(path));
    EXPECT_EQ(f.name, expected_format) << path;
    BadRecordPolicy bad(skip_bad);
    Converted c = f.convert(ConvertInput{path, fs::path(path).stem().string(), {}}, bad);
    if (skipped) *skipped = bad.skipped();
    return c;
  }
  std::string error_of(const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "no mf::Error thrown";
    return "";
  }
  fs::path dir_;
};

TEST(Detokenize, UndoesSpacedPunctuation) {
  EXPECT_EQ(detokenize("Say , Jim , how about a few beers ? "), "Say, Jim, how about a few beers?");
  EXPECT_EQ(detokenize("Good . Let ' s go now !"), "Good. Let's go now!");
  EXPECT_EQ(detokenize("I ’ Ve seen it ; it ’ s fine"), "I’ve seen it; it’s fine");
  EXPECT_EQ(detokenize("the game 's theme , don 't"), "the game's theme, don't");
  EXPECT_EQ(detokenize("DON ' T shout"), "DON'T shout");
  EXPECT_EQ(detokenize("a ( small ) test [ 1 ] of 50 %"), "a (small) test [1] of 50%");
  EXPECT_EQ(detokenize("the \" Nameless \" , a unit"), "the \"Nameless\", a unit");
  EXPECT_EQ(detokenize("At 17 : 30 it cost $ 14 ; ratio : high"), "At 17:30 it cost $14; ratio: high");
  EXPECT_EQ(detokenize("the players ' rights and O 'Brien at ten o ’ clock"),
            "the players' rights and O'Brien at ten o’clock");
  EXPECT_EQ(detokenize("described as ' yammer ' calls"), "described as 'yammer' calls");
  EXPECT_EQ(detokenize("  spaces\t and\nnewlines  "), "spaces and newlines");
  EXPECT_EQ(detokenize(""), "");
}

TEST(CitationMarks, WikipediaMarksGoOtherBracketsStay) {
  EXPECT_EQ(strip_citation_marks("It is large.[12] It grew[3][4], then fell [citation needed]."),
            "It is large. It grew, then fell.");
  EXPECT_EQ(strip_citation_marks("A[note 1] b[nb 2] c[a] d [when?] e"), "A b c d e");
  EXPECT_EQ(strip_citation_marks("Nice [ˈni.ci] said [...] and [I] and [Contributor]"),
            "Nice [ˈni.ci] said [...] and [I] and [Contributor]");
}

TEST_F(DataConvert, AlpacaTrimsAndDropsEmptyAnswers) {
  const auto p = write("alpaca_sample.json",
                       "[\n"
                       "{\"instruction\": \" Add. \", \"input\": \"2, 3\", \"output\": \"5\\n\"},\n"
                       "{\"instruction\": \"Name a colour\", \"input\": \"\", \"output\": \"Red\"},\n"
                       "{\"instruction\": \"Say nothing\", \"input\": \"\", \"output\": \"  \"}\n"
                       "]\n");
  const Converted c = convert(p, "alpaca");
  ASSERT_EQ(c.records.size(), 2u);
  EXPECT_EQ(c.dropped, 1);
  EXPECT_EQ(c.records[0].instruction, "Add.");
  EXPECT_EQ(c.records[0].input, "2, 3");
  EXPECT_EQ(c.records[0].output, "5");
  EXPECT_EQ(c.records[0].source, "alpaca_sample");
  EXPECT_EQ(c.records[1].input, "");
}

TEST_F(DataConvert, InstructResponseReadsTheResponseField) {
  const auto p = write("gpteacher_codegen.json",
                       "[{\"instruction\": \"Write hello world in C\", \"input\": \"\", "
                       "\"response\": \"#include <stdio.h>\\nint main() { puts(\\\"hi\\\"); }\"}]");
  const Converted c = convert(p, "instruct_response");
  ASSERT_EQ(c.records.size(), 1u);
  EXPECT_EQ(c.records[0].output, "#include <stdio.h>\nint main() { puts(\"hi\"); }");
}

TEST_F(DataConvert, DollyKeepsCategoryAndStripsCitations) {
  const auto p = write("dolly_summarization.jsonl",
                       "{\"instruction\": \"Summarize\", \"context\": \"Paris is big.[12] It is old [citation "
                       "needed].\", \"response\": \"Big[1] and old.\", \"category\": \"summarization\"}\n");
  const Converted c = convert(p, "dolly");
  ASSERT_EQ(c.records.size(), 1u);
  EXPECT_EQ(c.records[0].input, "Paris is big. It is old.");
  EXPECT_EQ(c.records[0].output, "Big and old.");
  EXPECT_EQ(c.records[0].category, "summarization");
}

TEST_F(DataConvert, Gsm8kStripsCalculatorAnnotationsAndStatesTheAnswer) {
  const auto p = write("gsm8k_train.jsonl",
                       "{\"question\": \"Weng earns $12 an hour. How much for 50 minutes?\", \"answer\": \"She earns "
                       "12/60 = $<<12/60=0.2>>0.2 per minute.\\nSo 0.2 x 50 = $<<0.2*50=10>>10.\\n#### 10\"}\n"
                       "{\"question\": \"No steps?\", \"answer\": \"#### 1,080\"}\n");
  const Converted c = convert(p, "gsm8k");
  ASSERT_EQ(c.records.size(), 2u);
  EXPECT_EQ(c.records[0].output, "She earns 12/60 = $0.2 per minute.\nSo 0.2 x 50 = $10.\nThe answer is 10.");
  EXPECT_EQ(c.records[1].output, "The answer is 1,080.");
}

TEST_F(DataConvert, DailyDialogOneRecordPerReplyWithAlternatingHistory) {
  // Eleven turns: the last reply has nine earlier turns before its instruction turn, of which
  // the last six are kept; shorter histories keep an even number so that they open with a user turn.
  std::string line;
  for (int t = 0; t < 11; ++t) line += "Turn " + std::to_string(t) + " , ok ? __eou__ ";
  const auto p = write("dailydialog_train.txt",
                       "Good.Let ' s go , shall we ? __eou__ It ’ s fine . __eou__\n"
                       "Only one turn . __eou__\n" +
                           line + "\n");
  const Converted c = convert(p, "dailydialog");
  EXPECT_EQ(c.dropped, 1);
  ASSERT_EQ(c.records.size(), 1u + 10u);
  EXPECT_EQ(c.records[0].instruction, "Good. Let's go, shall we?");
  EXPECT_EQ(c.records[0].output, "It’s fine.");
  EXPECT_TRUE(c.records[0].history.empty());

  const SftRecord& second = c.records[2];  // reply "Turn 2": one earlier turn, dropped (odd)
  EXPECT_EQ(second.instruction, "Turn 1, ok?");
  EXPECT_EQ(second.output, "Turn 2, ok?");
  EXPECT_TRUE(second.history.empty());
  const SftRecord& third = c.records[3];  // reply "Turn 3": turns 0 and 1 as user, assistant
  ASSERT_EQ(third.history.size(), 2u);
  EXPECT_EQ(third.history[0].role, "user");
  EXPECT_EQ(third.history[0].content, "Turn 0, ok?");
  EXPECT_EQ(third.history[1].role, "assistant");
  const SftRecord& last = c.records.back();  // reply "Turn 10": history = turns 3..8
  EXPECT_EQ(last.instruction, "Turn 9, ok?");
  ASSERT_EQ(last.history.size(), 6u);
  EXPECT_EQ(last.history.front().content, "Turn 3, ok?");
  EXPECT_EQ(last.history.front().role, "user");
  EXPECT_EQ(last.history.back().content, "Turn 8, ok?");
  EXPECT_EQ(last.history.back().role, "assistant");
}

TEST_F(DataConvert, HhRlhfSplitsTurnsAndDropsEmptyFinalAnswers) {
  const auto p = write(
      "hh_rlhf_harmless_base.jsonl",
      "{\"chosen\": \"\\n\\nHuman: How do I pick a lock?\\n\\nAssistant: Why do you ask?\\n\\nHuman: I am locked "
      "out.\\n\\nHuman: Of my own house.\\n\\nAssistant: Call a locksmith.\", \"rejected\": \"x\"}\n"
      "{\"chosen\": \"\\n\\nHuman: Hi\\n\\nAssistant:\", \"rejected\": \"\\n\\nHuman: Hi\\n\\nAssistant: Hello\"}\n"
      "{\"chosen\": \"\\n\\nHuman: one\\n\\nAssistant: two\", \"rejected\": \"\"}\n");
  const Converted c = convert(p, "hh_rlhf");
  EXPECT_EQ(c.dropped, 1);
  ASSERT_EQ(c.records.size(), 2u);
  const SftRecord& r = c.records[0];
  EXPECT_EQ(r.instruction, "I am locked out.\n\nOf my own house.");
  EXPECT_EQ(r.output, "Call a locksmith.");
  ASSERT_EQ(r.history.size(), 2u);
  EXPECT_EQ(r.history[0].role, "user");
  EXPECT_EQ(r.history[0].content, "How do I pick a lock?");
  EXPECT_EQ(r.history[1].role, "assistant");
  EXPECT_EQ(r.history[1].content, "Why do you ask?");
  EXPECT_EQ(c.records[1].instruction, "one");
  EXPECT_TRUE(c.records[1].history.empty());
}

TEST_F(DataConvert, WikiTextOneDocumentPerArticleWithArtefactsUndone) {
  const auto p = write("wikitext2_valid.txt",
                       " \n = Valkyria Chronicles = \n \n The game 's role @-@ playing system , released in 2011 , "
                       "sold 1 @,@ 000 copies at $ 9 @.@ 99 each ( Japan ) . \n \n = = Gameplay = = \n \n"
                       " Players take \" turns \" . \n \n = Second Article = \n \n Text . \n");
  const Converted c = convert(p, "wikitext");
  ASSERT_EQ(c.documents.size(), 2u);
  EXPECT_EQ(c.documents[0],
            "Valkyria Chronicles\n\nThe game's role-playing system, released in 2011, sold 1,000 copies at $9.99 "
            "each (Japan).\n\nGameplay\n\nPlayers take \"turns\".");
  EXPECT_EQ(c.documents[1], "Second Article\n\nText.");
}

TEST_F(DataConvert, PlainTextPacksParagraphsWithoutSplittingThem) {
  std::string text;
  for (int i = 0; i < 30; ++i) text += "SPEAKER " + std::to_string(i) + ":\n" + std::string(300, 'a') + "\n\n";
  text += "LONG:\n" + std::string(5000, 'b') + "\n";
  const auto p = write("tinyshakespeare.txt", text);
  const Converted c = convert(p, "text");
  ASSERT_GE(c.documents.size(), 3u);
  size_t speakers = 0;
  for (const std::string& d : c.documents) {
    EXPECT_TRUE(d.size() <= 4000 || d.rfind("LONG:", 0) == 0) << d.size();
    for (size_t i = d.find("SPEAKER"); i != std::string::npos; i = d.find("SPEAKER", i + 1)) ++speakers;
    EXPECT_EQ(d.find("\n\n\n"), std::string::npos);
  }
  EXPECT_EQ(speakers, 30u);
  EXPECT_EQ(c.documents.back(), "LONG:\n" + std::string(5000, 'b'));
}

TEST(SpiderSchema, RendersTablesKeysAndQuotedNames) {
  const nlohmann::json db = nlohmann::json::parse(R"({
    "db_id": "shop",
    "table_names_original": ["shop", "sale"],
    "column_names_original": [[-1, "*"], [0, "Shop_ID"], [0, "Home Town"], [1, "Shop_ID"], [1, "Day"], [1, "Amount"]],
    "column_types": ["text", "number", "text", "number", "time", "number"],
    "primary_keys": [1, [3, 4]],
    "foreign_keys": [[3, 1]]
  })");
  EXPECT_EQ(render_spider_schema(db),
            "CREATE TABLE shop (Shop_ID number PRIMARY KEY, \"Home Town\" text);\n"
            "CREATE TABLE sale (Shop_ID number REFERENCES shop(Shop_ID), Day time, Amount number, "
            "PRIMARY KEY (Shop_ID, Day));");
  nlohmann::json broken = db;
  broken["column_types"].erase(0);
  EXPECT_THROW(render_spider_schema(broken), RecordError);
}

TEST_F(DataConvert, SpiderFindsItsSchemaFileAndTidiesTheQuery) {
  write("spider_tables.json",
        R"([{"db_id": "shop", "table_names_original": ["shop"], "column_names_original": [[-1, "*"], [0, "Name"]],
             "column_types": ["text", "text"], "primary_keys": [1], "foreign_keys": []}])");
  const auto p = write("spider_dev.jsonl",
                       "{\"db_id\": \"shop\", \"question\": \"Which shops are called 'A  B'?\", \"query\": "
                       "\"SELECT name ,  count(*) FROM shop WHERE name  =  'A  B'\"}\n"
                       "{\"db_id\": \"nowhere\", \"question\": \"?\", \"query\": \"SELECT 1\"}\n");
  EXPECT_EQ(detect_data_format(sample_file((dir_ / "spider_tables.json").string())).name, "spider_tables");
  int64_t skipped = 0;
  const Converted c = convert(p, "spider", /*skip_bad=*/true, &skipped);
  ASSERT_EQ(c.records.size(), 1u);
  EXPECT_EQ(skipped, 1);  // the unknown db_id
  EXPECT_EQ(c.records[0].instruction, "Write an SQLite query that answers this question: Which shops are called 'A  B'?");
  EXPECT_EQ(c.records[0].input, "Database \"shop\":\nCREATE TABLE shop (Name text PRIMARY KEY);");
  EXPECT_EQ(c.records[0].output, "SELECT name, count(*) FROM shop WHERE name = 'A  B'");

  fs::remove(dir_ / "spider_tables.json");
  const std::string err = error_of([&] { convert(p, "spider"); });
  EXPECT_NE(err.find("spider_tables.json"), std::string::npos) << err;
}

TEST_F(DataConvert, DetectionErrorsNameTheFile) {
  const auto empty = write("empty.jsonl", "\n  \n");
  std::string err = error_of([&] { detect_data_format(sample_file(empty)); });
  EXPECT_NE(err.find("empty.jsonl: empty file"), std::string::npos) << err;
  // An empty file converts to nothing when the format is forced.
  BadRecordPolicy bad;
  EXPECT_TRUE(find_data_format("alpaca").convert({empty, "empty", {}}, bad).records.empty());

  const auto odd = write("odd.jsonl", "{\"query\": \"a\", \"reply\": \"b\"}\n");
  err = error_of([&] { detect_data_format(sample_file(odd)); });
  EXPECT_NE(err.find("\"reply\""), std::string::npos) << err;
  EXPECT_NE(err.find("--format"), std::string::npos) << err;
  err = error_of([&] { find_data_format("csv"); });
  EXPECT_NE(err.find("known: spider_tables, spider"), std::string::npos) << err;
}

TEST_F(DataConvert, BadRecordsNameFileAndLineOrAreCountedWhenSkipping) {
  const auto p = write("gsm8k_bad.jsonl",
                       "{\"question\": \"q1\", \"answer\": \"a\\n#### 1\"}\n"
                       "{\"question\": \"q2\", \"answer\": \n"
                       "{\"question\": \"q3\"}\n"
                       "{\"question\": \"q4\", \"answer\": \"no final line\"}\n"
                       "[1, 2]\n"
                       "{\"question\": \"q6\", \"answer\": \"#### 6\"}\n");
  const Format& gsm = find_data_format("gsm8k");
  BadRecordPolicy strict;
  std::string err = error_of([&] { gsm.convert({p, "gsm8k_bad", {}}, strict); });
  EXPECT_NE(err.find("gsm8k_bad.jsonl:2: malformed JSON"), std::string::npos) << err;

  BadRecordPolicy skip(true);
  const Converted c = gsm.convert({p, "gsm8k_bad", {}}, skip);
  EXPECT_EQ(c.records.size(), 2u);
  EXPECT_EQ(skip.skipped(), 4);
  ASSERT_EQ(skip.examples().size(), 4u);
  EXPECT_NE(skip.examples()[1].find("gsm8k_bad.jsonl:3: missing field \"answer\""), std::string::npos);
  EXPECT_NE(skip.examples()[2].find(":4: field \"answer\" has no final"), std::string::npos);
  EXPECT_NE(skip.examples()[3].find(":5: expected a JSON object"), std::string::npos);

  const auto arr = write("alpaca_bad.json", "[\n{\"instruction\": \"a\", \"output\": \"b\"},\n{\"instruction\": 3, "
                                            "\"output\": \"b\"}\n]\n");
  BadRecordPolicy strict2;
  err = error_of([&] { find_data_format("alpaca").convert({arr, "alpaca_bad", {}}, strict2); });
  EXPECT_NE(err.find("alpaca_bad.json:3: field \"instruction\" must be a string"), std::string::npos) << err;

  // A reason quoting invalid UTF-8 of the record stays valid UTF-8, so the summary can list it.
  BadRecordPolicy skip_bytes(true);
  skip_bytes.report("x.jsonl", 7, std::string("bad byte \xff\xfe here"));
  ASSERT_EQ(skip_bytes.examples().size(), 1u);
  EXPECT_EQ(skip_bytes.examples()[0], "x.jsonl:7: bad byte \xef\xbf\xbd\xef\xbf\xbd here");
  EXPECT_NO_THROW((void)nlohmann::json(skip_bytes.examples()).dump());
}

TEST(DomainMapRules, OrderedRulesPrefixEntriesAndDefaults) {
  const DomainMap m = DomainMap::parse(
      "domains: [Coder, Writer, Encyclopedia, Thinker]\n"
      "sources:\n"
      "  gsm8k: Thinker\n"
      "  alpaca:\n"
      "    default: Encyclopedia\n"
      "    rules:\n"
      "      - {field: instruction, regex: '\\bpoem\\b', domain: Writer}\n"
      "      - {field: instruction, regex: 'python|write', domain: Coder}\n"
      "  alpaca_code: {default: Coder}\n"
      "  notes: {default: Encyclopedia, rules: [{field: category, regex: '^creative', domain: Writer}]}\n",
      "map.yaml");
  SftRecord r;
  r.source = "alpaca";
  r.instruction = "Write a POEM about Python";
  EXPECT_EQ(m.domain_of(r), "Writer");  // first matching rule, case-insensitive
  r.instruction = "write some python";
  EXPECT_EQ(m.domain_of(r), "Coder");
  r.instruction = "Who was Ada Lovelace?";
  EXPECT_EQ(m.domain_of(r), "Encyclopedia");
  r.source = "alpaca_code_2k";  // longest prefix entry wins
  EXPECT_EQ(m.domain_of(r), "Coder");
  r.source = "gsm8k_train";
  EXPECT_EQ(m.domain_of(r), "Thinker");
  r.source = "notes";
  r.category = "creative_writing";
  EXPECT_EQ(m.domain_of(r), "Writer");
  r.source = "gsm8kx";  // not "gsm8k" followed by "_"
  EXPECT_FALSE(m.covers(r.source));
  EXPECT_THROW(m.domain_of(r), Error);
}

TEST(DomainMapRules, ErrorsNameTheKeyAndLine) {
  const auto err = [](const std::string& yaml) {
    try {
      DomainMap::parse(yaml, "map.yaml");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string e = err("domains: [Coder]\nsources:\n  a:\n    default: Coder\n    rules:\n"
                      "      - {field: instruction, regex: x, domain: Codr}\n");
  EXPECT_NE(e.find("map.yaml:6: sources.a.rules[0].domain: unknown domain 'Codr' (domains: Coder)"),
            std::string::npos) << e;
  e = err("domains: [Coder]\nsources:\n  a: {default: Coder, rule: []}\n");
  EXPECT_NE(e.find("sources.a.rule: unknown key"), std::string::npos) << e;
  e = err("domains: [Coder]\nsources:\n  a: {default: Coder, rules: [{field: title, regex: x, domain: Coder}]}\n");
  EXPECT_NE(e.find("sources.a.rules[0].field: unknown field 'title'"), std::string::npos) << e;
  e = err("domains: [Coder]\nsources:\n  a: {default: Coder, rules: [{field: input, regex: '(', domain: Coder}]}\n");
  EXPECT_NE(e.find("sources.a.rules[0].regex: invalid regex '('"), std::string::npos) << e;
  e = err("domains: [Coder]\nsources:\n  a: Poet\n");
  EXPECT_NE(e.find("map.yaml:3: sources.a: unknown domain 'Poet'"), std::string::npos) << e;
  e = err("domains: [Coder, Coder]\nsources: {a: Coder}\n");
  EXPECT_NE(e.find("listed twice"), std::string::npos) << e;
  e = err("domain: [Coder]\n");
  EXPECT_NE(e.find("domain: unknown key"), std::string::npos) << e;
  e = err("domains: [Coder\n");
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST_F(DataConvert, ConvertFilesWritesOutputsAndSummary) {
  const auto a = write("alpaca_sample.json",
                       "[{\"instruction\": \"Write a poem\", \"output\": \"Roses\"},"
                       " {\"instruction\": \"What is 2+2?\", \"output\": \"4\"}]");
  const auto t = write("notes.txt", "One paragraph.\n\nAnother.\n");
  const DomainMap m = DomainMap::parse(
      "domains: [Writer, Encyclopedia]\nsources:\n  alpaca_sample:\n    default: Encyclopedia\n"
      "    rules: [{field: instruction, regex: poem, domain: Writer}]\n",
      "map.yaml");
  std::ostringstream progress;
  const fs::path out = dir_ / "out";
  const auto files = convert_files({a, t}, out.string(), ConvertOptions{}, &m, progress);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].domains.at("Writer"), 1);
  EXPECT_EQ(files[0].domains.at("Encyclopedia"), 1);
  EXPECT_EQ(files[1].written, 1);
  BadRecordPolicy strict;
  const auto recs = read_sft_jsonl((out / "alpaca_sample.jsonl").string(), strict);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].domain, "Writer");
  EXPECT_EQ(recs[0].source, "alpaca_sample");
  std::ifstream docs(out / "notes.jsonl");
  std::string line;
  std::getline(docs, line);
  EXPECT_EQ(nlohmann::json::parse(line)["text"], "One paragraph.\n\nAnother.");
  std::ifstream summary(out / "summary.json");
  const nlohmann::json s = nlohmann::json::parse(summary);
  EXPECT_EQ(s["instructions"]["total"]["total"], 2);
  EXPECT_EQ(s["files"][1]["kind"], "documents");
  const CountTable table = convert_count_table(files, &m);
  EXPECT_NE(table.render().find("alpaca_sample       1             1      2"), std::string::npos) << table.render();
  EXPECT_NE(progress.str().find("[1/2]"), std::string::npos);

  // Problems found before anything is written: a source without a map entry, clashing names.
  const auto other = write("other.json", "[{\"instruction\": \"x\", \"output\": \"y\"}]");
  std::string err = error_of([&] { convert_files({other}, (dir_ / "out2").string(), {}, &m, progress); });
  EXPECT_NE(err.find("no entry for the source 'other'"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir_ / "out2"));
  fs::create_directories(dir_ / "sub");
  const auto twin = (dir_ / "sub" / "notes.txt").string();
  std::ofstream(twin) << "x\n";
  err = error_of([&] { convert_files({t, twin}, (dir_ / "out3").string(), {}, &m, progress); });
  EXPECT_NE(err.find("same file name"), std::string::npos) << err;
}

}  // namespace
