// Reading chat input from a terminal through libedit (BSD licence, Debian's libedit-dev):
// arrow keys, history, emacs key bindings, ~/.editrc.
//
// libedit reads through our own character function, which
//   - waits on the terminal and on a wake-up descriptor together, so that a Ctrl-C taken by
//     another thread (InterruptWatcher) ends the read;
//   - takes the terminal's bracketed-paste markers out of the input and tells which line ended
//     inside a paste, so that a pasted multi-line message can become one turn.
// The terminal's settings are saved at construction and put back at destruction, whatever
// happened in between.
#pragma once
#include <termios.h>

#include <string>

struct editline;
struct history;

namespace mf::cli {

class LineEditor {
 public:
  // Sets LC_CTYPE from the environment (UTF-8 when that is not), which libedit needs for
  // characters beyond ASCII.
  LineEditor(const char* program, int wake_fd);
  ~LineEditor();
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  enum class Status { line, interrupted, end_of_input };
  struct Input {
    Status status = Status::end_of_input;
    std::string text;                  // the line without its newline
    bool ended_inside_paste = false;   // its newline came from pasted text
    bool interrupted_with_text = false;  // Ctrl-C came while the line held text
  };
  Input read(const std::string& prompt);
  void remember(const std::string& line);  // into the history the up arrow walks

 private:
  static int read_char(editline* el, wchar_t* out);
  static char* prompt_text(editline* el);
  int take_byte(int timeout_ms);     // a byte, or one of the k* results in line_editor.cpp
  bool take_paste_marker();          // after ESC: consumed "[200~" / "[201~"?

  editline* el_ = nullptr;
  history* hist_ = nullptr;
  int wake_fd_;
  bool saved_ = false;
  termios saved_termios_{};
  std::string prompt_;
  std::string pending_;              // bytes read from the terminal, not yet given to libedit
  bool in_paste_ = false;
  bool newline_in_paste_ = false;
  bool interrupted_ = false, interrupted_with_text_ = false;
};

}  // namespace mf::cli
