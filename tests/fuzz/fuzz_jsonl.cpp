// Instruction datasets (JSONL): each line through the unified-record reader, bad ones skipped.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "data/records.h"
#include "data/sft_record.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mf::fuzz::write_input(data, size, "records.jsonl");
  try {
    mf::BadRecordPolicy skip(true);
    (void)mf::read_sft_jsonl(path, skip);
  } catch (const mf::Error&) {
  }
  return 0;
}
