// tokenizer.json (HF tokenizers): the BPE model, added tokens, normalizer, pre-tokenizer and
// post-processor; a loaded tokenizer then encodes and decodes a fixed text.
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "fuzz_input.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::filesystem::remove(mf::fuzz::scratch_dir() / "tokenizer_config.json");
  const std::string path = mf::fuzz::write_input(data, size, "tokenizer.json");
  try {
    const auto tok = mf::load_hf_tokenizer(path);
    const auto ids = tok->encode("Hello world, 123 -- \xc3\xa9t\xc3\xa9!", true);
    (void)tok->decode(ids);
  } catch (const mf::Error&) {
  }
  return 0;
}
