#include "interrupt_watcher.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace mf::cli {

InterruptWatcher::InterruptWatcher() {
  MF_CHECK(::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) == 0, "chat: cannot make a pipe: ", std::strerror(errno));
  sigemptyset(&interrupt_set_);
  sigaddset(&interrupt_set_, SIGINT);
  pthread_sigmask(SIG_BLOCK, &interrupt_set_, &previous_mask_);
  thread_ = std::thread([this] { watch(); });
}

InterruptWatcher::~InterruptWatcher() {
  stopping_ = true;
  pthread_kill(thread_.native_handle(), SIGINT);  // blocked there too: sigwait takes it
  thread_.join();
  take();  // an interrupt left pending must not hit the process once unblocked
  pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  ::close(pipe_[0]);
  ::close(pipe_[1]);
}

void InterruptWatcher::watch() {
  using Clock = std::chrono::steady_clock;
  Clock::time_point last{};
  while (true) {
    int sig = 0;
    if (sigwait(&interrupt_set_, &sig) != 0 || stopping_) return;
    const Clock::time_point now = Clock::now();
    if (quit_on_interrupt_ || (pending_.load() > 0 && now - last < std::chrono::seconds(1))) {
      // The terminal is in its ordinary mode here (the line editor restores it after each
      // line and has not started before take_interrupts), so leaving without unwinding leaves
      // it usable.
      static const char kBye[] = "\n";
      [[maybe_unused]] ssize_t n = ::write(STDOUT_FILENO, kBye, sizeof kBye - 1);
      std::_Exit(130);
    }
    last = now;
    ++pending_;
    cancel_.store(true);
    const char byte = 1;
    [[maybe_unused]] ssize_t n = ::write(pipe_[1], &byte, 1);  // full pipe: already readable
  }
}

int InterruptWatcher::take() {
  char buf[64];
  while (::read(pipe_[0], buf, sizeof buf) > 0) {
  }
  cancel_.store(false);
  return pending_.exchange(0);
}

}  // namespace mf::cli
