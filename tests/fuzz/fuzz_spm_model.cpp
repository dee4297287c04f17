// tokenizer.model (SentencePiece's protobuf ModelProto, read by moeforge's own bounded reader):
// pieces, trainer and normalizer specs; a loaded tokenizer then encodes and decodes a fixed text.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "fuzz_input.h"
#include "tokenizer/spm_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mf::fuzz::write_input(data, size, "tokenizer.model");
  try {
    const auto tok = mf::make_spm_tokenizer(mf::spm_config_from_model_file(path));
    const auto ids = tok->encode("Hello world, 123 -- \xc3\xa9t\xc3\xa9! <s> \xf0\x9f\x98\x80", true);
    (void)tok->decode(ids);
  } catch (const mf::Error&) {
  }
  return 0;
}
