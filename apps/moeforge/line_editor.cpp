#include "line_editor.h"

#include <histedit.h>
#include <langinfo.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <cstdio>
#include <cstring>
#include <cwchar>
#include <string_view>

#include "core/error.h"

namespace mf::cli {

namespace {

// take_byte's results besides a byte (0..255).
constexpr int kTimeout = -1, kInterrupted = -2, kEndOfInput = -3;
// Terminals wrap pasted text in these once bracketed paste is switched on (xterm's protocol).
constexpr std::string_view kPasteStart = "[200~", kPasteEnd = "[201~";
constexpr char kPasteOn[] = "\x1b[?2004h", kPasteOff[] = "\x1b[?2004l";
// How long an ESC waits for the rest of a paste marker: a lone ESC key is not one.
constexpr int kMarkerWaitMs = 100;

void write_terminal(const char* s) {
  std::fputs(s, stdout);
  std::fflush(stdout);
}

// Bracketed paste on for the time of one read only: answers printed later must not be
// mistaken for terminal protocol, and a terminal left in the mode after exit misbehaves.
class BracketedPaste {
 public:
  explicit BracketedPaste(bool on) : on_(on) {
    if (on_) write_terminal(kPasteOn);
  }
  ~BracketedPaste() {
    if (on_) write_terminal(kPasteOff);
  }
  BracketedPaste(const BracketedPaste&) = delete;
  BracketedPaste& operator=(const BracketedPaste&) = delete;

 private:
  bool on_;
};

bool utf8_codeset() { return std::strcmp(nl_langinfo(CODESET), "UTF-8") == 0; }

}  // namespace

LineEditor::LineEditor(const char* program, int wake_fd) : wake_fd_(wake_fd) {
  // moeforge's text is UTF-8 throughout; libedit decodes and displays by LC_CTYPE.
  if (!std::setlocale(LC_CTYPE, "") || !utf8_codeset()) std::setlocale(LC_CTYPE, "C.UTF-8");
  saved_ = ::tcgetattr(STDIN_FILENO, &saved_termios_) == 0;
  el_ = el_init(program, stdin, stdout, stderr);
  hist_ = history_init();
  MF_CHECK(el_ && hist_, "chat: libedit could not start on this terminal");
  HistEvent ev;
  history(hist_, &ev, H_SETSIZE, 1000);
  history(hist_, &ev, H_SETUNIQUE, 1);
  el_set(el_, EL_CLIENTDATA, this);
  el_set(el_, EL_EDITOR, "emacs");
  el_set(el_, EL_HIST, history, hist_);
  el_set(el_, EL_PROMPT, &LineEditor::prompt_text);
  el_set(el_, EL_GETCFN, &LineEditor::read_char);
  el_source(el_, nullptr);  // the person's ~/.editrc, as every libedit program reads it
}

LineEditor::~LineEditor() {
  if (el_) el_end(el_);
  if (hist_) history_end(hist_);
  if (saved_) ::tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_termios_);
}

char* LineEditor::prompt_text(editline* el) {
  void* self = nullptr;
  el_get(el, EL_CLIENTDATA, &self);
  return const_cast<char*>(static_cast<LineEditor*>(self)->prompt_.c_str());
}

void LineEditor::remember(const std::string& line) {
  HistEvent ev;
  history(hist_, &ev, H_ENTER, line.c_str());
}

LineEditor::Input LineEditor::read(const std::string& prompt) {
  prompt_ = prompt;
  newline_in_paste_ = interrupted_ = interrupted_with_text_ = false;
  // libedit learns of a resized terminal from SIGWINCH only through handlers of its own
  // (EL_SIGNAL), which this program does not install; asking at each line covers the usual
  // case, a window resized while an answer was being read.
  el_resize(el_);
  Input in;
  int count = 0;
  const char* line = nullptr;
  {
    BracketedPaste paste(::isatty(STDOUT_FILENO) != 0);
    line = el_gets(el_, &count);
  }
  if (interrupted_) {
    // Ctrl-C may come inside a key sequence (ESC ...) or a paste: the next line starts from
    // libedit's initial state, and keys read ahead are dropped as the terminal drops its own.
    el_reset(el_);
    pending_.clear();
    in_paste_ = false;
    in.status = Status::interrupted;
    in.interrupted_with_text = interrupted_with_text_;
    return in;
  }
  if (!line || count <= 0) return in;  // end of input (Ctrl-D on an empty line)
  in.status = Status::line;
  in.text.assign(line, size_t(count));
  if (!in.text.empty() && in.text.back() == '\n') in.text.pop_back();
  in.ended_inside_paste = newline_in_paste_;
  return in;
}

int LineEditor::take_byte(int timeout_ms) {
  if (!pending_.empty()) {
    const unsigned char b = static_cast<unsigned char>(pending_.front());
    pending_.erase(0, 1);
    return b;
  }
  while (true) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return kEndOfInput;
    if (n == 0) return kTimeout;
    if (fds[1].revents & POLLIN) return kInterrupted;
    char buf[4096];
    const ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) return kEndOfInput;
    pending_.assign(buf + 1, size_t(got - 1));
    return static_cast<unsigned char>(buf[0]);
  }
}

bool LineEditor::take_paste_marker() {
  std::string seen;
  while (seen.size() < kPasteStart.size()) {
    const int b = take_byte(kMarkerWaitMs);
    if (b < 0) {
      if (b == kInterrupted) interrupted_ = true;
      break;
    }
    seen.push_back(char(b));
    if (kPasteStart.substr(0, seen.size()) != seen && kPasteEnd.substr(0, seen.size()) != seen) break;
  }
  if (seen == kPasteStart || seen == kPasteEnd) {
    in_paste_ = seen == kPasteStart;
    return true;
  }
  pending_.insert(0, seen);  // an ordinary escape sequence (arrow keys): libedit's to read
  return false;
}

int LineEditor::read_char(editline* el, wchar_t* out) {
  void* data = nullptr;
  el_get(el, EL_CLIENTDATA, &data);
  LineEditor& self = *static_cast<LineEditor*>(data);
  std::mbstate_t state{};
  while (true) {
    int b = self.interrupted_ ? kInterrupted : self.take_byte(-1);
    // Ctrl-C: the watcher's signal, or the byte itself where the terminal does not signal.
    if (b == kInterrupted || b == 0x03) {
      const LineInfo* li = el_line(el);
      self.interrupted_ = true;
      self.interrupted_with_text_ = li->lastchar != li->buffer;
      return -1;
    }
    if (b == kEndOfInput) return 0;
    if (b == 0x1b && self.take_paste_marker()) continue;
    if (self.interrupted_) continue;  // came while looking for a marker: handled above
    if (self.in_paste_ && (b == '\r' || b == '\n')) {
      self.newline_in_paste_ = true;
      b = '\n';
    }
    const char c = char(b);
    const size_t r = std::mbrtowc(out, &c, 1, &state);
    if (r == size_t(-2)) continue;  // inside a multi-byte character
    if (r == size_t(-1)) {          // not UTF-8: shown as the replacement character
      state = {};
      *out = L'\uFFFD';
    }
    return 1;
  }
}

}  // namespace mf::cli
