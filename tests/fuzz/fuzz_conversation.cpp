// A conversation file for chat's /load: OpenAI's message list, every key and type checked.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "fuzz_input.h"
#include "infer/conversation_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mf::fuzz::write_input(data, size, "conversation.json");
  try {
    (void)mf::load_conversation(path);
  } catch (const mf::Error&) {
  }
  return 0;
}
