// Chat-format datasets (TRL messages, ShareGPT conversations, prompt/completion): each input as a
// JSONL file through the three converters, bad records skipped. Every turn list is untrusted:
// roles, content types, lengths.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "data/convert/formats.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mf::fuzz::write_input(data, size, "chats.jsonl");
  for (const char* format : {"messages", "sharegpt", "prompt_completion"}) {
    try {
      mf::BadRecordPolicy skip(true);
      (void)mf::find_data_format(format).convert(mf::ConvertInput{path, "chats", {}}, skip);
    } catch (const mf::Error&) {
    }
  }
  return 0;
}
