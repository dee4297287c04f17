#include "core/work_pool.h"

#include <omp.h>
#include <sched.h>
#include <xmmintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace mf {

namespace {

// A loop's units are dealt out in contiguous ranges, one per thread, so a thread walks its own
// stretch of a matrix (one prefetch stream, and its claims touch only its own cache line: on this
// kind of VM an atomic on a line another core holds costs ~0.2 us, as much as a small chunk of
// work). A thread that has finished its range takes units from the others' (so a thread that is
// not running leaves its range to the rest). Each range is one 64-bit word, so that taking a unit
// and checking that the loop it belongs to is still the current one are one compare-and-swap:
//   bits 32-63 epoch (which loop), bits 16-31 end of the range, bits 0-15 next unit.
// A worker that wakes late sees a newer epoch, or an empty range, and takes nothing.
constexpr int64_t kMaxUnits = 0xffff;

uint64_t pack_range(uint64_t epoch, uint64_t end, uint64_t next) { return (epoch << 32) | (end << 16) | next; }
uint32_t epoch_of(uint64_t s) { return uint32_t(s >> 32); }
uint64_t end_of(uint64_t s) { return (s >> 16) & 0xffff; }
uint64_t next_of(uint64_t s) { return s & 0xffff; }

// How long an idle worker spins before it sleeps: longer than the serial work between two loops of
// a decode step (norms, rope, the KV-cache append: a few microseconds), much shorter than a time
// slice. While the caller waits for a unit another thread took it spins kCallerSpin, then yields
// its core at every check (that thread may be queued behind it).
constexpr auto kSpin = std::chrono::microseconds(100);
constexpr auto kCallerSpin = std::chrono::microseconds(20);
// For its first microseconds an idle worker only spins; after that it also yields at every check,
// so that on a busy machine it gives its core to the thread that would publish the next loop.
constexpr auto kPureSpin = std::chrono::microseconds(5);

// A caller that waited this long for a unit another thread had started, and 8 times as long as
// its own units took on average, met a thread the OS took off its core (a decode step's units take
// microseconds; a 16-row server step's biggest ones a few hundred): the machine is busy. Its next loops
// then run on the caller alone for a while, since every loop shared with a descheduled thread
// would wait out a time slice; the while doubles with each stall that follows one (a busy
// machine stays busy) and is forgotten after kCleanLoops loops without a stall.
constexpr auto kStall = std::chrono::microseconds(500);
constexpr int kStallUnits = 8;
constexpr auto kFirstSerialWhile = std::chrono::milliseconds(20);
constexpr auto kLongestSerialWhile = std::chrono::milliseconds(640);
constexpr int kCleanLoops = 512;

thread_local bool inside_body = false;

struct alignas(64) Range {
  std::atomic<uint64_t> state{0};
};

class WorkPool {
 public:
  explicit WorkPool(int workers) : ranges_(size_t(workers) + 1) {
    threads_.reserve(size_t(workers));
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { worker(i + 1); });
  }

  ~WorkPool() {
    stop_.store(true);
    wake_.fetch_add(1);
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  int size() const { return int(threads_.size()) + 1; }

  // Runs chunks [0, chunks) of `body` on up to `threads` threads (the caller is thread 0).
  void run(int64_t chunks, int threads, ChunkBody body) {
    std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
    const bool after_stall = lock.owns_lock() && std::chrono::steady_clock::now() < serial_until_;
    if (!lock.owns_lock() || after_stall) {
      if (after_stall) serial_loops_.fetch_add(1, std::memory_order_relaxed);
      for (int64_t c = 0; c < chunks; ++c) body(c, 0);
      return;
    }
    // Units of `span` chunks, so that any chunk count fits a range's 16-bit fields.
    const int64_t span = (chunks + kMaxUnits - 1) / kMaxUnits;
    const int64_t units = (chunks + span - 1) / span;
    threads = int(std::min<int64_t>(threads, units));
    body_object_.store(&body, std::memory_order_relaxed);
    chunks_.store(chunks, std::memory_order_relaxed);
    span_.store(span, std::memory_order_relaxed);
    threads_in_use_.store(threads, std::memory_order_relaxed);
    mxcsr_.store(_mm_getcsr(), std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    const uint32_t epoch = epoch_.load(std::memory_order_relaxed) + 1;
    for (int t = 0; t < threads; ++t)
      ranges_[size_t(t)].state.store(pack_range(epoch, uint64_t(units * (t + 1) / threads), uint64_t(units * t / threads)),
                                     std::memory_order_relaxed);
    epoch_.store(epoch, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      wake_.fetch_add(1, std::memory_order_seq_cst);
      wake_.notify_all();
    }
    const auto started = std::chrono::steady_clock::now();
    const int64_t own = work(epoch, 0, threads);
    const auto worked = std::chrono::steady_clock::now() - started;
    note_wait(wait_done(units), own > 0 ? worked / own : std::chrono::steady_clock::duration{});
    if (error_) std::rethrow_exception(error_);
  }

  // How many loops ran serially because of a stall (for tests and --verbose).
  int64_t serial_loops() const { return serial_loops_.load(std::memory_order_relaxed); }

 private:
  // Takes and runs units of loop `epoch`, from this thread's range first, then from the others',
  // until none is left; reports how many it ran (to the loop, and as the return value).
  int64_t work(uint32_t epoch, int thread, int threads) {
    int64_t ran = 0;
    for (int i = 0; i < threads; ++i) {
      Range& r = ranges_[size_t((thread + i) % threads)];
      for (;;) {
        uint64_t s = r.state.load(std::memory_order_acquire);
        if (epoch_of(s) != epoch || next_of(s) >= end_of(s)) break;
        // Read before the claim: a successful claim proves the loop was still running when these
        // were read, and the caller rewrites them only after every unit has been claimed and run.
        const ChunkBody* body = body_object_.load(std::memory_order_relaxed);
        const int64_t chunks = chunks_.load(std::memory_order_relaxed), span = span_.load(std::memory_order_relaxed);
        if (!r.state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
        run_unit(*body, int64_t(next_of(s)) * span, std::min(chunks, int64_t(next_of(s) + 1) * span), thread);
        ++ran;
      }
    }
    if (ran) done_.fetch_add(ran, std::memory_order_release);
    return ran;
  }

  void run_unit(const ChunkBody& body, int64_t first, int64_t last, int thread) {
    if (failed_.load(std::memory_order_relaxed)) return;
    inside_body = true;
    try {
      for (int64_t c = first; c < last; ++c) body(c, thread);
    } catch (...) {
      std::lock_guard<std::mutex> g(error_mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
    inside_body = false;
  }

  // Waits until every unit has run; returns how long that took (zero when none was left).
  std::chrono::steady_clock::duration wait_done(int64_t units) {
    if (done_.load(std::memory_order_acquire) >= units) return {};
    const auto start = std::chrono::steady_clock::now();
    for (int spins = 0; done_.load(std::memory_order_acquire) < units; ++spins) {
      _mm_pause();
      if ((spins & 63) == 63 && std::chrono::steady_clock::now() - start > kCallerSpin) sched_yield();
    }
    return std::chrono::steady_clock::now() - start;
  }

  // The caller's side of the stall rule above (only the caller holding busy_ gets here), given how
  // long it waited for the others and how long its own units took on average.
  void note_wait(std::chrono::steady_clock::duration waited, std::chrono::steady_clock::duration unit) {
    if (waited < kStall || waited < kStallUnits * unit) {
      if (serial_while_.count() > 0 && ++clean_loops_ >= kCleanLoops) serial_while_ = {};
      return;
    }
    clean_loops_ = 0;
    serial_while_ = serial_while_.count() == 0 ? std::chrono::steady_clock::duration(kFirstSerialWhile)
                                               : std::min<std::chrono::steady_clock::duration>(2 * serial_while_,
                                                                                               kLongestSerialWhile);
    serial_until_ = std::chrono::steady_clock::now() + serial_while_;
  }

  void worker(int thread) {
    uint32_t seen = 0;
    unsigned mxcsr = _mm_getcsr();
    for (;;) {
      seen = wait_for_loop(seen);
      if (stop_.load(std::memory_order_relaxed)) return;
      const int threads = threads_in_use_.load(std::memory_order_relaxed);
      if (thread >= threads) continue;
      const unsigned wanted = mxcsr_.load(std::memory_order_relaxed);
      if (wanted != mxcsr) _mm_setcsr(mxcsr = wanted);
      work(seen, thread, threads);
    }
  }

  // Returns the first published epoch other than `seen` (or anything once stopping).
  uint32_t wait_for_loop(uint32_t seen) {
    auto fresh = [&](uint32_t& e) {
      e = epoch_.load(std::memory_order_acquire);
      return e != seen || stop_.load(std::memory_order_relaxed);
    };
    uint32_t e = seen;
    const auto start = std::chrono::steady_clock::now();
    for (int spins = 0;; ++spins) {
      if (fresh(e)) return e;
      _mm_pause();
      if ((spins & 63) == 63) {
        const auto waited = std::chrono::steady_clock::now() - start;
        if (waited > kSpin) break;
        if (waited > kPureSpin) sched_yield();
      }
    }
    for (;;) {
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      const uint32_t ticket = wake_.load(std::memory_order_seq_cst);
      if (fresh(e)) {
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        return e;
      }
      wake_.wait(ticket, std::memory_order_seq_cst);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
      if (fresh(e)) return e;
    }
  }

  std::mutex busy_;  // one caller at a time; a second one runs its loop serially
  // The stall rule's state, the caller's alone (under busy_).
  std::chrono::steady_clock::time_point serial_until_{};
  std::chrono::steady_clock::duration serial_while_{};
  int clean_loops_ = 0;
  std::atomic<int64_t> serial_loops_{0};
  std::vector<Range> ranges_;
  alignas(64) std::atomic<uint32_t> epoch_{0};
  std::atomic<const ChunkBody*> body_object_{nullptr};
  std::atomic<int64_t> chunks_{0}, span_{1};
  std::atomic<int> threads_in_use_{1};
  std::atomic<unsigned> mxcsr_{0};
  std::atomic<bool> failed_{false}, stop_{false};
  alignas(64) std::atomic<int64_t> done_{0};
  std::mutex error_mutex_;
  std::exception_ptr error_;
  alignas(64) std::atomic<int> sleepers_{0};
  std::atomic<uint32_t> wake_{0};
  std::vector<std::thread> threads_;
};

WorkPool& pool() {
  // Sized once, for the most threads a run may ask for; workers beyond the current setting sleep.
  static WorkPool instance(std::clamp(std::max(omp_get_max_threads(), int(std::thread::hardware_concurrency())), 1,
                                      256) - 1);
  return instance;
}

}  // namespace

int parallel_threads() { return std::max(1, omp_get_max_threads()); }

int64_t parallel_loops_run_serially_after_stalls() { return pool().serial_loops(); }

int64_t chunk_size(int64_t items, int64_t min_items, int per_thread) {
  const int64_t target = std::max<int64_t>(1, int64_t(parallel_threads()) * per_thread);
  return std::max<int64_t>({int64_t(1), min_items, (items + target - 1) / target});
}

void parallel_chunks(int64_t chunks, ChunkBody body) {
  if (chunks <= 0) return;
  const int threads = parallel_threads();
  if (chunks == 1 || threads == 1 || inside_body || omp_in_parallel()) {
    for (int64_t c = 0; c < chunks; ++c) body(c, 0);
    return;
  }
  WorkPool& p = pool();
  p.run(chunks, std::min(threads, p.size()), body);
}

}  // namespace mf
