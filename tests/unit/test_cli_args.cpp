#include <gtest/gtest.h>

#include <sstream>

#include "core/error.h"
#include "moeforge/cli_args.h"

namespace {

struct Opts {
  std::string model;
  int max_tokens = 16;
  float temperature = 0.5f;
  uint64_t seed = 0;
  bool verbose = false;
  std::vector<std::string> stop;
};

mf::ArgParser make(Opts& o) {
  mf::ArgParser p("moeforge generate -m PATH [options]", "Generates text.");
  p.option("model", 'm', "PATH", "model directory or .gguf", &o.model, true);
  p.option("max-tokens", "N", "tokens to generate", &o.max_tokens);
  p.option("temperature", "T", "0 = greedy", &o.temperature);
  p.option("seed", "N", "sampling seed", &o.seed);
  p.flag("verbose", "print speed", &o.verbose);
  p.repeated("stop", "TEXT", "stop string", &o.stop);
  return p;
}

TEST(CliArgs, ParsesAllForms) {
  Opts o;
  auto p = make(o);
  std::ostringstream help;
  ASSERT_TRUE(p.parse({"-m", "x.gguf", "--max-tokens=5", "--temperature", "0.25", "--seed", "9", "--verbose",
                       "--stop", "a", "--stop=b"},
                      help));
  EXPECT_EQ(o.model, "x.gguf");
  EXPECT_EQ(o.max_tokens, 5);
  EXPECT_FLOAT_EQ(o.temperature, 0.25f);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_TRUE(o.verbose);
  EXPECT_EQ(o.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(help.str().empty());
}

TEST(CliArgs, HelpListsOptions) {
  Opts o;
  auto p = make(o);
  std::ostringstream help;
  EXPECT_FALSE(p.parse({"--help"}, help));
  EXPECT_NE(help.str().find("usage: moeforge generate"), std::string::npos);
  EXPECT_NE(help.str().find("--max-tokens N"), std::string::npos);
  EXPECT_NE(help.str().find("-m, --model PATH"), std::string::npos);
}

void expect_error(std::vector<std::string> args, const std::string& needle) {
  Opts o;
  auto p = make(o);
  std::ostringstream help;
  try {
    p.parse(args, help);
    ADD_FAILURE() << "no error for " << needle;
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(CliArgs, ClearErrors) {
  expect_error({"-m", "x", "--bogus"}, "unknown option '--bogus'");
  expect_error({"-m", "x", "--max-tokens", "12x"}, "--max-tokens: expected an integer, got '12x'");
  expect_error({"-m", "x", "--temperature", "hot"}, "--temperature: expected a number");
  expect_error({"-m", "x", "--seed", "-1"}, "--seed: expected a non-negative integer");
  expect_error({"-m", "x", "--max-tokens"}, "needs a value");
  expect_error({"--verbose"}, "missing required option -m/--model");
  expect_error({"-m", "x", "stray"}, "unexpected argument 'stray'");
  expect_error({"-m", "x", "--verbose=1"}, "takes no value");
  expect_error({"-q"}, "unknown option '-q'");
}

}  // namespace

namespace {

TEST(CliArgs, LlamaCppSpellingsAreAliasesAndListedInHelp) {
  std::string model, system;
  int max_tokens = 0;
  float temperature = 1;
  mf::ArgParser p("moeforge generate -m PATH", "summary");
  p.option("model", 'm', "PATH", "model", &model, true);
  p.option("system", 0, "TEXT", "system prompt", &system);
  p.option("max-tokens", "N", "most tokens", &max_tokens);
  p.option("temperature", "T", "temperature", &temperature);
  p.alias("-n", "max-tokens");
  p.alias("--temp", "temperature");
  p.alias("-sys", "system");
  std::ostringstream help;
  ASSERT_TRUE(p.parse({"-m", "x", "-n", "7", "--temp=0.25", "-sys", "be brief"}, help));
  EXPECT_EQ(max_tokens, 7);
  EXPECT_FLOAT_EQ(temperature, 0.25f);
  EXPECT_EQ(system, "be brief");
  EXPECT_NE(p.help().find("--max-tokens, -n N"), std::string::npos) << p.help();
  EXPECT_THROW(p.alias("-n", "temperature"), mf::Error);     // taken
  EXPECT_THROW(p.alias("-q", "no-such-option"), mf::Error);  // names nothing
}

TEST(CliArgs, UnknownOptionsSuggestTheNearestOne) {
  expect_error({"-m", "x", "--temprature", "0"}, "did you mean --temperature?");
  expect_error({"-m", "x", "--max-token", "3"}, "did you mean --max-tokens?");
  expect_error({"-m", "x", "-temp", "0"}, "unknown option '-temp'");
  expect_error({"-m", "x", "--zzzzzzzz"}, "unknown option '--zzzzzzzz' (see --help)");
}

TEST(CliArgs, PositionalsStandAnywhereAmongTheOptions) {
  // `train --max-steps 5 RECIPE.yaml` as well as `train RECIPE.yaml --max-steps 5`.
  for (const auto& args : std::vector<std::vector<std::string>>{{"r.yaml", "--steps", "5", "--quiet"},
                                                                {"--steps", "5", "r.yaml", "--quiet"},
                                                                {"--steps", "5", "--quiet", "r.yaml"},
                                                                {"--steps=5", "--quiet", "--", "r.yaml"}}) {
    std::string recipe;
    int steps = 0;
    bool quiet = false;
    mf::ArgParser p("moeforge train RECIPE.yaml [options]", "Trains.");
    p.positional("RECIPE.yaml", "the recipe", &recipe, true);
    p.option("steps", "N", "steps", &steps);
    p.flag("quiet", "quiet", &quiet);
    std::ostringstream help;
    ASSERT_TRUE(p.parse(args, help));
    EXPECT_EQ(recipe, "r.yaml");
    EXPECT_EQ(steps, 5);  // an option's value is never taken for the positional
    EXPECT_TRUE(quiet);
  }
}

TEST(CliArgs, PositionalListsMissingAndSurplusArguments) {
  std::string recipe;
  mf::ArgParser one("moeforge train RECIPE.yaml", "Trains.");
  one.positional("RECIPE.yaml", "the recipe", &recipe, true);
  std::ostringstream help;
  try {
    one.parse({}, help);
    ADD_FAILURE() << "a missing required positional was accepted";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing RECIPE.yaml"), std::string::npos) << e.what();
  }
  try {
    one.parse({"a.yaml", "b.yaml"}, help);
    ADD_FAILURE() << "a second positional was accepted";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected argument 'b.yaml'"), std::string::npos) << e.what();
  }
  std::vector<std::string> dirs;
  std::string out;
  mf::ArgParser many("moeforge compare RUN_DIR...", "Compares.");
  many.positionals("RUN_DIR", "runs", &dirs, true);
  many.option("output", 'o', "FILE", "table file", &out);
  ASSERT_TRUE(many.parse({"a", "-o", "t.md", "b", "--", "-c"}, help));
  EXPECT_EQ(dirs, (std::vector<std::string>{"a", "b", "-c"}));  // after --, "-c" is a name
  EXPECT_EQ(out, "t.md");
  std::ostringstream listed;
  EXPECT_FALSE(many.parse({"--help"}, listed));
  EXPECT_NE(listed.str().find("RUN_DIR..."), std::string::npos) << listed.str();
}

TEST(CliArgs, HelpGroupsOptionsAndEndsWithExamples) {
  bool a = false, b = false, c = false;
  mf::ArgParser p("moeforge x [options]", "Does x.");
  p.flag("own", "the command's own flag", &a);
  p.group("sampling");
  p.flag("greedy", "a sampling flag", &b);
  p.group("");
  p.flag("late", "declared after the group, listed with the command's own", &c);
  p.example("moeforge x --own", "does x its own way");
  std::ostringstream help;
  EXPECT_FALSE(p.parse({"-h"}, help));
  const std::string h = help.str();
  const size_t options = h.find("\noptions:\n"), own = h.find("--own"), late = h.find("--late"),
               sampling = h.find("\nsampling:\n"), greedy = h.find("--greedy"), examples = h.find("\nexamples:\n");
  ASSERT_NE(options, std::string::npos) << h;
  ASSERT_NE(sampling, std::string::npos) << h;
  ASSERT_NE(examples, std::string::npos) << h;
  EXPECT_LT(options, own);
  EXPECT_LT(own, late);
  EXPECT_LT(late, sampling);
  EXPECT_LT(sampling, greedy);
  EXPECT_LT(greedy, examples);
  EXPECT_NE(h.find("  moeforge x --own\n      does x its own way\n"), std::string::npos) << h;
}

}  // namespace
