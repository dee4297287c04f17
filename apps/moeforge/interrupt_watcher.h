// Ctrl-C for the interactive chat without a signal handler: SIGINT is blocked in every thread
// and one thread takes it with sigwait (as `serve` does). The watcher must be made before the
// model starts its OpenMP threads, which inherit the blocked mask; otherwise one of them could
// take the default action and kill the process.
//
// Until take_interrupts() is called (while the model loads) a Ctrl-C ends the process at once
// with status 130, as for any command. After it, each Ctrl-C sets the flag generation polls once
// per token (GenerateOptions::cancel) and makes wake_fd() readable, so a line reader waiting on
// the terminal returns. A second Ctrl-C
// within a second that nobody has taken yet (the main thread is still inside a forward pass it
// cannot leave, e.g. a long prefill) ends the process at once with status 130, as a shell's
// interrupted command does.
#pragma once
#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

namespace mf::cli {

class InterruptWatcher {
 public:
  InterruptWatcher();
  ~InterruptWatcher();
  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

  void take_interrupts() { quit_on_interrupt_ = false; }
  const std::atomic<bool>* cancel_flag() const { return &cancel_; }
  int wake_fd() const { return pipe_[0]; }
  // The Ctrl-Cs that arrived since the last call; clears the cancel flag and wake_fd.
  int take();

 private:
  void watch();

  sigset_t interrupt_set_{}, previous_mask_{};
  int pipe_[2] = {-1, -1};
  std::atomic<bool> cancel_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> quit_on_interrupt_{true};
  std::atomic<int> pending_{0};
  std::thread thread_;
};

}  // namespace mf::cli
