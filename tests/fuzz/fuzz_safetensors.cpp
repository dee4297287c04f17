// safetensors files: header size, JSON header, dtypes, shapes and offsets.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "fuzz_input.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mf::fuzz::write_input(data, size, "input.safetensors");
  try {
    (void)mf::load_safetensors(path);
  } catch (const mf::Error&) {
  }
  return 0;
}
