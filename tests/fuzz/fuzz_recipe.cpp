// Training recipes (YAML): structure, aliases, nesting, keys and every value's range.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "fuzz_input.h"
#include "train/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mf::fuzz::write_input(data, size, "recipe.yaml");
  try {
    (void)mf::load_recipe(path);
  } catch (const mf::Error&) {
  }
  return 0;
}
