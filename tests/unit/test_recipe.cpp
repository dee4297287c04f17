// Recipes are untrusted input too: typos, aliases, nesting and odd structure all end in one clear
// error naming the file; the reader's own calls are the list of known keys.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "core/error.h"
#include "train/recipe.h"

namespace {

std::string recipe_error(const std::string& body) {
  // ctest runs each test of this file as its own process, two at a time: one file per process.
  const std::string path = ::testing::TempDir() + "/recipe_under_test_" + std::to_string(::getpid()) + ".yaml";
  std::ofstream(path) << body;
  try {
    mf::load_recipe(path);
  } catch (const mf::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    return what;
  }
  return "";
}

const char* kValid = "data: {train: corpus.txt}\noutput: runs/x\n";

TEST(Recipe, UnknownKeysAreRefusedAndTheKnownOnesListed) {
  EXPECT_EQ(recipe_error(kValid), "");
  const std::string e = recipe_error(std::string(kValid) + "train: {stepz: 3}\n");
  EXPECT_NE(e.find("unknown key 'train.stepz'"), std::string::npos) << e;
  EXPECT_NE(e.find("steps"), std::string::npos) << e;      // listed from the reads themselves
  EXPECT_NE(e.find("lb_scope"), std::string::npos) << e;
  EXPECT_NE(recipe_error(std::string(kValid) + "bogus: 1\n").find("unknown key 'bogus'"), std::string::npos);
}

TEST(Recipe, AliasBombIsRefusedBeforeItExpands) {
  // Nine levels of nine aliases each would be 9^9 (387 million) nodes as a tree.
  std::string body = std::string(kValid) + "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i < 10; ++i) {
    body += "x" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 9; ++k) body += std::string(k ? ", " : "") + "*a" + std::to_string(i - 1);
    body += "]\n";
  }
  const std::string e = recipe_error(body);
  EXPECT_NE(e.find("aliases"), std::string::npos) << e;
}

TEST(Recipe, DeepNestingAndOddStructureAreClearErrors) {
  std::string deep = std::string(kValid) + "model: {config: ";
  for (int i = 0; i < 5000; ++i) deep += "[";
  for (int i = 0; i < 5000; ++i) deep += "]";
  deep += "}\n";
  EXPECT_NE(recipe_error(deep).find("nested deeper than"), std::string::npos);
  EXPECT_NE(recipe_error(std::string(kValid) + "? {a: 1}\n: 2\n"), "");
}

}  // namespace
