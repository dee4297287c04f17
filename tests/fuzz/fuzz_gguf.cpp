// GGUF files: header, metadata, tensor infos, then the model config and vocabulary built from them.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "fuzz_input.h"
#include "io/gguf.h"
#include "model/load.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mf::fuzz::write_input(data, size, "input.gguf");
  try {
    const mf::GgufFile f = mf::GgufFile::open(path);
    (void)mf::config_from_gguf(f);
  } catch (const mf::Error&) {
  }
  return 0;
}
