// Lines a person types into `moeforge chat`, put together into messages. One line is one
// message, except:
//   - a line ending in a backslash continues on the next line (the backslash is removed);
//   - a line starting with """ opens a block that ends at a line ending in """ (ollama's
//     syntax; text on the opening and closing lines belongs to the message);
//   - a line that ended inside a bracketed paste (the terminal marks pasted text) continues,
//     so a pasted multi-line message is one turn.
// Lines are joined with '\n'; a message that is empty once finished is dropped.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace mf {

class ChatInputAssembler {
 public:
  // Adds one line (without its newline); returns the message once it is complete.
  std::optional<std::string> add(std::string_view line, bool ended_inside_paste = false);
  // True while a message is being continued (the REPL shows a continuation prompt).
  bool continuing() const { return continuing_; }
  void clear();   // forgets a message in progress (Ctrl-C)

 private:
  std::optional<std::string> finish();

  std::string text_;
  bool continuing_ = false;
  bool in_block_ = false;
};

}  // namespace mf
