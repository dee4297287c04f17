// Every parallel loop of the CPU engine (inference and training alike) runs on a persistent pool
// of worker threads instead of OpenMP regions; oneDNN's sgemm runs single-threaded inside it,
// one tile of C per chunk (kernels/cpu/matmul.cpp).
//
// Why not OpenMP: a decode step opens a parallel loop for every matrix of every layer (about 150
// per token), a training step thousands, and at the end of an OpenMP region the caller waits for
// every thread of the team, including one the OS has descheduled to run another process. On a
// busy machine each of those joins can cost a whole time slice (docs/benchmarks.md, "OpenMP wait
// policy": decode kept 0.27x of its idle speed under two busy processes).
//
// Here a loop is split into chunks that threads claim one at a time, and the caller waits only
// for chunks that were claimed: a worker that is not running claims nothing, and the caller does
// its share and the rest. Idle workers spin briefly (the gap between two loops of one step is a
// few microseconds), then sleep on a futex until the next loop is published. A worker the OS takes
// off its core in the middle of a chunk still holds the caller up; when that happens (a wait of
// over 500 us for chunks that take microseconds), the caller runs the next loops alone for 20 ms,
// twice as long after each further stall (up to 640 ms), until loops run clean again: on a machine
// that other processes keep busy, one thread that is never waited for beats two that stall.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace mf {

// A non-owning reference to a callable body(chunk, thread); the callable must outlive the call.
class ChunkBody {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, ChunkBody>>>
  ChunkBody(F& f)  // NOLINT(google-explicit-constructor): passed as a lambda at every call site
      : object_(static_cast<void*>(&f)), call_([](void* o, int64_t chunk, int thread) {
          (*static_cast<F*>(o))(chunk, thread);
        }) {}
  void operator()(int64_t chunk, int thread) const { call_(object_, chunk, thread); }

 private:
  void* object_;
  void (*call_)(void*, int64_t, int);
};

// Runs body(chunk, thread) for every chunk in [0, chunks) on the calling thread and the pool's
// workers, and returns when every chunk has run. `thread` is in [0, parallel_threads()): an index
// for per-thread scratch (0 is the caller). Each chunk runs exactly once, on a thread whose
// floating-point modes (MXCSR: flush-to-zero, rounding) are the caller's, so results do not depend
// on which thread ran what. Runs serially on the caller when called from inside a body or an
// OpenMP region, or while another thread is using the pool. The first exception a body throws is
// rethrown here after the loop has stopped (chunks not yet started are skipped).
void parallel_chunks(int64_t chunks, ChunkBody body);

template <class F>
void parallel_chunks(int64_t chunks, F&& body) {
  ChunkBody ref(body);
  parallel_chunks(chunks, ref);
}

// Runs body(begin, end) over [0, items) in pieces of `grain` items (the last one shorter), on the
// pool. The pieces depend on items and grain alone, never on the thread count, so a body that
// sums within its piece gives the same result on any machine and under any load (training's
// results do not depend on --threads).
template <class F>
void parallel_ranges(int64_t items, int64_t grain, F&& body) {
  if (items <= 0) return;
  grain = grain < 1 ? 1 : grain;
  auto piece = [&](int64_t c, int) {
    const int64_t begin = c * grain;
    body(begin, begin + grain < items ? begin + grain : items);
  };
  parallel_chunks((items + grain - 1) / grain, piece);
}

// The sum over [0, items) of body(begin, end) for pieces of `grain` items, added in piece order:
// the same bits whatever the thread count (an OpenMP reduction adds one partial per thread).
template <class F>
double parallel_sum(int64_t items, int64_t grain, F&& body);

// How many threads parallel_chunks uses: OpenMP's current setting of the calling thread (--threads,
// OMP_NUM_THREADS; the pool reads it there, though no OpenMP region runs).
int parallel_threads();

// Loops run on the caller alone because a recent loop stalled on a descheduled thread, since start.
int64_t parallel_loops_run_serially_after_stalls();

// Splits `items` units of work into chunks of at least `min_items` (so a claim is worth its
// atomic) and about `per_thread` chunks per thread (so a thread that falls behind leaves work
// for the others). Returns the chunk size in items.
int64_t chunk_size(int64_t items, int64_t min_items, int per_thread = 8);

template <class F>
double parallel_sum(int64_t items, int64_t grain, F&& body) {
  if (items <= 0) return 0.0;
  grain = grain < 1 ? 1 : grain;
  const int64_t pieces = (items + grain - 1) / grain;
  if (pieces == 1) return body(int64_t(0), items);
  std::vector<double> partial(static_cast<std::size_t>(pieces));
  auto piece = [&](int64_t c, int) {
    const int64_t begin = c * grain;
    partial[std::size_t(c)] = body(begin, begin + grain < items ? begin + grain : items);
  };
  parallel_chunks(pieces, piece);
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace mf
