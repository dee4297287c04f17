// config.json of an HF model directory: every model type's keys, ranges and plausibility caps.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "fuzz_input.h"
#include "model/config_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mf::fuzz::write_input(data, size, "config.json");
  try {
    (void)mf::load_hf_config(path);
  } catch (const mf::Error&) {
  }
  return 0;
}
