// parallel_chunks (core/work_pool.h): every chunk exactly once, on a valid thread index, with the
// caller's floating-point modes; nested, concurrent and OpenMP-region callers; exceptions; the
// stall rule; kernels whose results do not depend on the thread count.
#include <gtest/gtest.h>
#include <omp.h>
#include <xmmintrin.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/work_pool.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/softmax_xent.h"

using namespace mf;

namespace {

// More threads than this machine's cores, so that several workers share the ranges and steal.
class WorkPool : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = omp_get_max_threads();
    omp_set_num_threads(4);
  }
  void TearDown() override { omp_set_num_threads(saved_); }

 private:
  int saved_ = 1;
};

void expect_each_chunk_once(int64_t chunks) {
  std::vector<std::atomic<int>> runs(static_cast<size_t>(chunks));
  std::atomic<int> bad_thread{0};
  const int threads = parallel_threads();  // the caller's setting (OpenMP's is per thread)
  parallel_chunks(chunks, [&](int64_t c, int thread) {
    runs[size_t(c)].fetch_add(1, std::memory_order_relaxed);
    if (thread < 0 || thread >= threads) bad_thread.fetch_add(1);
  });
  for (int64_t c = 0; c < chunks; ++c) ASSERT_EQ(runs[size_t(c)].load(), 1) << "chunk " << c << " of " << chunks;
  EXPECT_EQ(bad_thread.load(), 0);
}

}  // namespace

TEST_F(WorkPool, RunsEveryChunkExactlyOnce) {
  EXPECT_EQ(parallel_threads(), 4);
  for (int64_t chunks : {0, 1, 2, 3, 7, 64, 1000, 65535, 65536, 200001}) expect_each_chunk_once(chunks);
}

TEST_F(WorkPool, ManyShortLoopsInARow) {
  // The decode pattern: thousands of tiny loops back to back. A unit run twice, or a worker
  // running a stale loop's body, shows up as a wrong total.
  std::vector<int64_t> slots(64, 0);
  for (int loop = 0; loop < 20000; ++loop) {
    const int64_t chunks = 1 + loop % 17;
    parallel_chunks(chunks, [&](int64_t c, int) { slots[size_t(c)] += loop; });
  }
  for (int64_t c = 0; c < 17; ++c) {
    int64_t want = 0;
    for (int loop = 0; loop < 20000; ++loop)
      if (c < 1 + loop % 17) want += loop;
    EXPECT_EQ(slots[size_t(c)], want) << "chunk " << c;
  }
}

TEST_F(WorkPool, NestedCallsRunSeriallyInsideABody) {
  std::vector<std::atomic<int>> runs(16 * 16);
  parallel_chunks(16, [&](int64_t outer, int) {
    parallel_chunks(16, [&](int64_t inner, int thread) {
      EXPECT_GE(thread, 0);
      runs[size_t(outer * 16 + inner)].fetch_add(1);
    });
  });
  for (auto& r : runs) EXPECT_EQ(r.load(), 1);
}

TEST_F(WorkPool, InsideAnOpenMPRegionRunsOnTheCaller) {
  std::atomic<int> total{0}, off_caller{0};
#pragma omp parallel num_threads(2)
  {
    parallel_chunks(10, [&](int64_t, int thread) {
      total.fetch_add(1);
      if (thread != 0) off_caller.fetch_add(1);
    });
  }
  EXPECT_EQ(total.load(), 10 * 2);
  EXPECT_EQ(off_caller.load(), 0);
}

TEST_F(WorkPool, ConcurrentCallersEachGetTheirWholeLoop) {
  // A second caller while the pool is busy runs its loop itself; both must complete.
  std::vector<int64_t> sums(4, 0);
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&sums, t] {
      for (int loop = 0; loop < 2000; ++loop) {
        std::atomic<int64_t> s{0};
        parallel_chunks(33, [&](int64_t c, int) { s.fetch_add(c + 1); });
        sums[size_t(t)] += s.load();
      }
    });
  for (auto& c : callers) c.join();
  for (int64_t s : sums) EXPECT_EQ(s, 2000 * (33 * 34 / 2));
}

TEST_F(WorkPool, BodiesRunWithTheCallersFloatingPointModes) {
  // Flush-to-zero on the caller (as FlushDenormals sets it for training) must hold on every
  // thread that runs a chunk, or results would depend on which thread ran what.
  const unsigned saved = _mm_getcsr();
  for (unsigned mode : {saved | 0x8040u, saved & ~0x8040u}) {
    _mm_setcsr(mode);
    std::atomic<int> mismatched{0};
    parallel_chunks(256, [&](int64_t, int) {
      if ((_mm_getcsr() & 0x8040u) != (mode & 0x8040u)) mismatched.fetch_add(1);
    });
    EXPECT_EQ(mismatched.load(), 0) << std::hex << mode;
  }
  _mm_setcsr(saved);
}

TEST_F(WorkPool, AnExceptionReachesTheCallerAndThePoolGoesOn) {
  EXPECT_THROW(parallel_chunks(1000,
                               [&](int64_t c, int) {
                                 if (c == 500) throw std::runtime_error("chunk 500");
                               }),
               std::runtime_error);
  expect_each_chunk_once(1000);
}

TEST_F(WorkPool, ChunkSizeRespectsTheMinimumAndSplitsPerThread) {
  EXPECT_EQ(chunk_size(1000, 1, 8), 32);   // 4 threads x 8 chunks
  EXPECT_EQ(chunk_size(1000, 100, 8), 100);
  EXPECT_EQ(chunk_size(3, 1, 8), 1);
  EXPECT_EQ(chunk_size(0, 1, 8), 1);
}

// A worker that stalls in the middle of a chunk (as one the OS takes off its core does) makes the
// caller run the next loops alone for a while, then share them again.
TEST_F(WorkPool, AfterAStalledWorkerTheCallerRunsLoopsAloneForAWhile) {
  omp_set_num_threads(2);
  // True when some chunk of a loop (each one 50 us of work, so a worker has time to join) ran on a
  // worker; polled for up to 3 s (an earlier stall, of this test or a busy machine's, may still
  // hold the caller alone for up to 640 ms).
  auto busy = [](std::chrono::microseconds t) {
    const auto until = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < until) {
    }
  };
  auto shared_within = [&busy](std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      std::atomic<int> off_caller{0};
      parallel_chunks(16, [&](int64_t, int thread) {
        busy(std::chrono::microseconds(50));
        if (thread != 0) off_caller.fetch_add(1);
      });
      if (off_caller.load() > 0) return true;
    }
    return false;
  };
  ASSERT_TRUE(shared_within(std::chrono::milliseconds(3000))) << "no worker ever took a chunk";
  // A worker's chunk sleeps 2 ms while the caller, done with the rest, waits for it; the next loop
  // then runs on the caller alone. (On a busy machine the caller may itself be off its core for
  // those 2 ms, or for the 20 ms after: then the stall goes unseen, or the while passes; retried.)
  bool serial_after_stall = false;
  for (int attempt = 0; attempt < 20 && !serial_after_stall; ++attempt) {
    std::atomic<bool> worker_slept{false};
    for (int tries = 0; tries < 100 && !worker_slept.load(); ++tries)
      parallel_chunks(64, [&](int64_t, int thread) {
        if (thread != 0 && !worker_slept.exchange(true)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        busy(std::chrono::microseconds(10));
      });
    ASSERT_TRUE(worker_slept.load()) << "no worker took a chunk in 100 loops";
    const int64_t serial_before = parallel_loops_run_serially_after_stalls();
    std::atomic<int> off_caller{0};
    parallel_chunks(256, [&](int64_t, int thread) {
      if (thread != 0) off_caller.fetch_add(1);
    });
    if (parallel_loops_run_serially_after_stalls() == serial_before + 1) {
      EXPECT_EQ(off_caller.load(), 0);
      serial_after_stall = true;
    }
  }
  EXPECT_TRUE(serial_after_stall);
  // Then, once the while has passed, loops are shared again.
  EXPECT_TRUE(shared_within(std::chrono::milliseconds(3000)));
  expect_each_chunk_once(4096);
}

// The kernels whose pieces are fixed by the shape (GEMM tiles, partial sums added in order) give
// the same bits at any thread count: what makes training reproducible across machines and loads.
TEST_F(WorkPool, KernelsGiveTheSameBitsAtAnyThreadCount) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
  };
  const int64_t M = 700, N = 900, K = 1000, rows = 3000, vocab = 97;
  const std::vector<float> a = random(size_t(M * K)), b = random(size_t(K * N)), logits = random(size_t(rows * vocab));
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) targets[size_t(r)] = int32_t((r * 31) % vocab);
  struct Result {
    std::vector<float> c, ct, dlogits;
    double squares, loss;
  };
  auto compute = [&](int threads) {
    omp_set_num_threads(threads);
    Result r;
    r.c.assign(size_t(M * N), 1.0f);
    gemm_f32(false, false, M, N, K, 0.5f, a.data(), K, b.data(), N, 1.0f, r.c.data(), N);
    r.ct.assign(size_t(N * M), 0.0f);  // (A B)^T = B^T A^T, with both transposed flags
    gemm_f32(true, true, N, M, K, 1.0f, b.data(), N, a.data(), K, 0.0f, r.ct.data(), M);
    r.squares = sum_of_squares(a.data(), M * K);
    r.dlogits.assign(logits.size(), 0.0f);
    r.loss = cross_entropy(logits.data(), targets.data(), rows, vocab, 1.0f / float(rows), r.dlogits.data()).loss_sum;
    return r;
  };
  const Result one = compute(1);
  for (int threads : {2, 3, 4}) {
    const Result many = compute(threads);
    EXPECT_EQ(std::memcmp(one.c.data(), many.c.data(), one.c.size() * sizeof(float)), 0) << threads << " threads";
    EXPECT_EQ(std::memcmp(one.ct.data(), many.ct.data(), one.ct.size() * sizeof(float)), 0) << threads << " threads";
    EXPECT_EQ(std::memcmp(one.dlogits.data(), many.dlogits.data(), one.dlogits.size() * sizeof(float)), 0);
    EXPECT_EQ(one.squares, many.squares) << threads << " threads";
    EXPECT_EQ(one.loss, many.loss) << threads << " threads";
  }
}
