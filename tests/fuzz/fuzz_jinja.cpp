// Chat templates (GGUF metadata, tokenizer_config.json): lex, parse and render one conversation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  try {
    mf::ChatTemplate t(source, "<s>", "</s>", "fuzz");
    const std::vector<mf::ChatMessage> messages = {{"system", "S"}, {"user", "hi"}, {"assistant", "A"},
                                                   {"user", "again"}};
    (void)t.render(messages, true);
  } catch (const mf::Error&) {
  }
  return 0;
}
