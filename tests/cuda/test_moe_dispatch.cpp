// CUDA MoE dispatch (kernels/cuda/moe_dispatch.h) against the CPU plan (mf::plan_dispatch of an
// mf::route result, capacity included) and the CPU gather / scatter (kernels/cpu/moe_dispatch.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda_test_util.h"
#include "kernels/cpu/moe_dispatch.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/moe_dispatch.h"
#include "moe/routing.h"

namespace {

using mf::cuda::DeviceBuffer;
using mf::cuda::DispatchPlanView;
using mf::cuda::testing::max_rel_err;
using mf::cuda::testing::random_normal;
using mf::cuda::testing::round_to_bf16;

class CudaMoeDispatch : public mf::cuda::testing::CudaTest {};

// Uploads go through cudaMemcpy on the legacy stream and kernels run on a non-blocking stream,
// so the tests order them with device-wide synchronisation.
void sync() { mf::cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

template <class T> DeviceBuffer to_device(const std::vector<T>& v) {
  DeviceBuffer b(std::max<size_t>(1, v.size() * sizeof(T)), "test input");
  b.upload(v.data(), v.size() * sizeof(T));
  return b;
}
template <class T> std::vector<T> to_host(const DeviceBuffer& b, size_t n) {
  std::vector<T> v(n);
  b.download(v.data(), n * sizeof(T));
  return v;
}

enum class Capacity { Dropless, Loose, Tight };
const char* name(Capacity c) { return c == Capacity::Dropless ? "dropless" : c == Capacity::Loose ? "loose" : "tight"; }

// A CPU routing (softmax top-k, capacity as RoutingConfig) and its dispatch plan. `ties`: all
// logits of a row equal, so every token picks experts 0..k-1 and capacity drops most of them.
struct Case {
  int64_t T = 0;
  int E = 0, k = 0;
  mf::Routing routing;
  mf::DispatchPlan plan;
  int capacity = 0;  // 0: dropless
  int64_t rows() const { return plan.offsets.back(); }
};

Case make_case(int64_t T, int E, int k, Capacity cap, bool ties, uint64_t seed) {
  Case c;
  c.T = T;
  c.E = E;
  c.k = k;
  auto logits = random_normal(size_t(T * E), seed, 2.0f);
  for (int64_t t = 0; t < T; ++t) {
    logits[size_t(t * E)] += 3.0f;  // skewed load, so capacity binds
    if (ties) std::fill(logits.begin() + t * E, logits.begin() + (t + 1) * E, 0.25f);
  }
  mf::RouteOptions o;
  o.policy = mf::RouterPolicy::SoftmaxTopK;
  o.top_k = k;
  o.capacity_factor = cap == Capacity::Dropless ? 0.0 : cap == Capacity::Loose ? 1.25 : 0.5;
  mf::route(logits.data(), T, E, o, c.routing);
  c.plan = mf::plan_dispatch(c.routing);
  c.capacity = int(c.routing.capacity);
  return c;
}

std::string label(const Case& c, Capacity cap, bool ties) {
  return "rows=" + std::to_string(c.T) + " E=" + std::to_string(c.E) + " k=" + std::to_string(c.k) + " " +
         name(cap) + (ties ? " ties" : "") + " capacity=" + std::to_string(c.capacity) +
         " dropped=" + std::to_string(c.routing.dropped);
}

std::vector<int32_t> cpu_row_of_slot(const Case& c) {
  std::vector<int32_t> v(size_t(c.T * c.k), -1);
  for (size_t r = 0; r < c.plan.source.size(); ++r) v[size_t(c.plan.source[r])] = int32_t(r);
  return v;
}

// The CPU plan's arrays on the device, in the layout of DispatchPlanView.
struct DevicePlan {
  DeviceBuffer counts, offsets, row_of_slot, slot_of_row;
  DispatchPlanView view() const {
    return {counts.as<int32_t>(), offsets.as<int32_t>(), row_of_slot.as<int32_t>(), slot_of_row.as<int32_t>()};
  }
};
DevicePlan upload_plan(const Case& c) {
  std::vector<int32_t> counts(size_t(c.E)), offsets(c.plan.offsets.begin(), c.plan.offsets.end()),
      slot_of_row(c.plan.source.begin(), c.plan.source.end());
  for (int e = 0; e < c.E; ++e) counts[size_t(e)] = int32_t(c.plan.offsets[size_t(e) + 1] - c.plan.offsets[size_t(e)]);
  slot_of_row.resize(size_t(c.T * c.k), -1);
  return {to_device(counts), to_device(offsets), to_device(cpu_row_of_slot(c)), to_device(slot_of_row)};
}

// Runs `f(c, cap, ties)` over rows {1, 37, 1000} x E {8, 64} x k {1, 2} x capacities, plus ties.
template <class F> void for_each_case(F f) {
  uint64_t seed = 1;
  for (int64_t T : {1, 37, 1000})
    for (int E : {8, 64})
      for (int k : {1, 2})
        for (Capacity cap : {Capacity::Dropless, Capacity::Loose, Capacity::Tight})
          for (bool ties : {false, true}) {
            const Case c = make_case(T, E, k, cap, ties, ++seed);
            SCOPED_TRACE(label(c, cap, ties));
            f(c);
          }
}

TEST_F(CudaMoeDispatch, PlanMatchesCpuPlanExactly) {
  mf::cuda::Stream stream;
  int dropping_cases = 0;
  for_each_case([&](const Case& c) {
    dropping_cases += c.routing.dropped > 0;
    const int64_t A = c.T * c.k, R = c.rows();
    constexpr int32_t kUntouched = 0x5eed;
    DeviceBuffer d_idx = to_device(c.routing.expert), d_counts(size_t(c.E) * 4), d_offsets(size_t(c.E + 1) * 4),
                 d_row_of_slot = to_device(std::vector<int32_t>(size_t(A), kUntouched)),
                 d_slot_of_row = to_device(std::vector<int32_t>(size_t(A), kUntouched)),
                 d_scratch(mf::cuda::plan_dispatch_scratch_bytes(c.E), "plan scratch");
    const DispatchPlanView plan{d_counts.as<int32_t>(), d_offsets.as<int32_t>(), d_row_of_slot.as<int32_t>(),
                                d_slot_of_row.as<int32_t>()};
    sync();
    mf::cuda::plan_dispatch(d_idx.as<int32_t>(), c.T, c.k, c.E, c.capacity, plan, d_scratch.get(), stream.get());
    sync();
    const std::vector<int32_t> offsets(c.plan.offsets.begin(), c.plan.offsets.end());
    EXPECT_EQ(to_host<int32_t>(d_offsets, size_t(c.E + 1)), offsets);
    std::vector<int32_t> counts(size_t(c.E));
    for (int e = 0; e < c.E; ++e) counts[size_t(e)] = offsets[size_t(e) + 1] - offsets[size_t(e)];
    EXPECT_EQ(to_host<int32_t>(d_counts, size_t(c.E)), counts);
    EXPECT_EQ(to_host<int32_t>(d_row_of_slot, size_t(A)), cpu_row_of_slot(c));
    auto slot_of_row = to_host<int32_t>(d_slot_of_row, size_t(A));
    EXPECT_EQ(std::vector<int32_t>(slot_of_row.begin(), slot_of_row.begin() + R), c.plan.source);
    for (int64_t r = R; r < A; ++r) ASSERT_EQ(slot_of_row[size_t(r)], kUntouched) << "row " << r << " past the plan";
  });
  EXPECT_GT(dropping_cases, 10);  // the capacity path was exercised
}

TEST_F(CudaMoeDispatch, PlanDropsOutOfRangeExperts) {
  mf::cuda::Stream stream;
  const std::vector<int32_t> idx{0, 5, -1, 2, 1, 1, 9, 0};  // 4 tokens, k = 2, E = 3
  DeviceBuffer d_idx = to_device(idx), d_counts(3 * 4), d_offsets(4 * 4), d_rows(8 * 4), d_slots(8 * 4),
      d_scratch(mf::cuda::plan_dispatch_scratch_bytes(3));
  sync();
  mf::cuda::plan_dispatch(d_idx.as<int32_t>(), 4, 2, 3, 0,
                          {d_counts.as<int32_t>(), d_offsets.as<int32_t>(), d_rows.as<int32_t>(),
                           d_slots.as<int32_t>()},
                          d_scratch.get(), stream.get());
  sync();
  EXPECT_EQ(to_host<int32_t>(d_offsets, 4), (std::vector<int32_t>{0, 2, 4, 5}));
  EXPECT_EQ(to_host<int32_t>(d_rows, 8), (std::vector<int32_t>{0, -1, -1, 4, 2, 3, -1, 1}));
  auto slots = to_host<int32_t>(d_slots, 8);
  EXPECT_EQ(std::vector<int32_t>(slots.begin(), slots.begin() + 5), (std::vector<int32_t>{0, 7, 4, 5, 3}));
}

TEST_F(CudaMoeDispatch, PermuteAndBackwardMatchCpu) {
  mf::cuda::Stream stream;
  for (int64_t H : {64, 13}) {  // the 16-byte vector path and the scalar one
    SCOPED_TRACE("H=" + std::to_string(H));
    for_each_case([&](const Case& c) {
      const int64_t A = c.T * c.k, R = c.rows();
      const DevicePlan plan = upload_plan(c);
      // Forward: xp[row] = x[token].
      const auto x = round_to_bf16(random_normal(size_t(c.T * H), 3));
      std::vector<float> want_xp(size_t(R * H));
      mf::moe_gather(x.data(), c.plan, H, want_xp.data());
      DeviceBuffer d_x = mf::cuda::upload_bf16(x), d_xp = mf::cuda::upload_bf16(std::vector<float>(size_t(A * H), 0.f));
      // Backward: dx[token] += dxp[row] over the token's rows.
      const auto dxp = round_to_bf16(random_normal(size_t(A * H), 4));
      const auto dx0 = random_normal(size_t(c.T * H), 5);
      auto want_dx = dx0;
      mf::moe_gather_backward(dxp.data(), c.plan, H, want_dx.data());
      DeviceBuffer d_dxp = mf::cuda::upload_bf16(dxp), d_dx = to_device(dx0);
      sync();
      mf::cuda::permute_rows(d_x.as<mf::cuda::bf16>(), plan.view(), c.T, c.k, H, d_xp.as<mf::cuda::bf16>(),
                             stream.get());
      mf::cuda::permute_rows_backward(d_dxp.as<mf::cuda::bf16>(), plan.view(), c.T, c.k, H, d_dx.as<float>(),
                                      stream.get());
      sync();
      const auto xp = mf::cuda::download_bf16(d_xp.as<mf::cuda::bf16>(), size_t(A * H));
      EXPECT_EQ(std::vector<float>(xp.begin(), xp.begin() + R * H), want_xp);  // a copy: exact
      for (int64_t i = R * H; i < A * H; ++i) ASSERT_EQ(xp[size_t(i)], 0.f) << "row " << i / H << " past the plan";
      // Same additions in the same order as the CPU: equal up to the CPU's own rounding.
      EXPECT_LE(max_rel_err(to_host<float>(d_dx, size_t(c.T * H)), want_dx), 1e-6);
    });
  }
}

TEST_F(CudaMoeDispatch, CombineAndBackwardMatchCpu) {
  mf::cuda::Stream stream;
  for (int64_t H : {64, 13}) {
    SCOPED_TRACE("H=" + std::to_string(H));
    for_each_case([&](const Case& c) {
      const int64_t A = c.T * c.k, R = c.rows();
      const DevicePlan plan = upload_plan(c);
      // Expert outputs in permuted order (rows past R are never read).
      const auto yp = round_to_bf16(random_normal(size_t(A * H), 6));
      const auto y0 = random_normal(size_t(c.T * H), 7);
      auto want_y = y0;
      mf::moe_scatter_add(yp.data(), c.plan, H, want_y.data());
      const auto dy = random_normal(size_t(c.T * H), 8);
      std::vector<float> want_dyp(size_t(R * H)), want_dgates(size_t(A), 0.f);
      mf::moe_scatter_add_backward(dy.data(), yp.data(), c.plan, H, want_dyp.data(), want_dgates.data());

      DeviceBuffer d_yp = mf::cuda::upload_bf16(yp), d_gates = to_device(c.routing.gate), d_y = to_device(y0),
                   d_dy = to_device(dy), d_dyp = mf::cuda::upload_bf16(std::vector<float>(size_t(A * H), 0.f)),
                   d_dgates = to_device(std::vector<float>(size_t(A), 9.f));  // written, dropped slots too
      sync();
      mf::cuda::combine_rows(d_yp.as<mf::cuda::bf16>(), d_gates.as<float>(), plan.view(), c.T, c.k, H,
                             d_y.as<float>(), stream.get());
      mf::cuda::combine_rows_backward(d_dy.as<float>(), d_yp.as<mf::cuda::bf16>(), d_gates.as<float>(), plan.view(),
                                      c.T, c.k, H, d_dyp.as<mf::cuda::bf16>(), d_dgates.as<float>(), stream.get());
      sync();
      EXPECT_LE(max_rel_err(to_host<float>(d_y, size_t(c.T * H)), want_y), 1e-6);
      // gate * dy is one fp32 product rounded once to bf16 on both sides: exact.
      const auto dyp = mf::cuda::download_bf16(d_dyp.as<mf::cuda::bf16>(), size_t(A * H));
      EXPECT_EQ(std::vector<float>(dyp.begin(), dyp.begin() + R * H), round_to_bf16(want_dyp));
      for (int64_t i = R * H; i < A * H; ++i) ASSERT_EQ(dyp[size_t(i)], 0.f) << "row " << i / H << " past the plan";
      const auto dgates = to_host<float>(d_dgates, size_t(A));
      EXPECT_LE(max_rel_err(dgates, want_dgates), 1e-5);
      for (size_t a = 0; a < dgates.size(); ++a) {
        if (!c.routing.kept[a]) {
          ASSERT_EQ(dgates[a], 0.f) << "dropped assignment " << a;
        }
      }
    });
  }
}

TEST_F(CudaMoeDispatch, GpuPlanDrivesTheRowOpsLikeTheCpuPlan) {
  // End to end on the device: plan_dispatch's own plan feeding permute and combine.
  mf::cuda::Stream stream;
  const Case c = make_case(1000, 64, 2, Capacity::Tight, false, 77);
  ASSERT_GT(c.routing.dropped, 0);
  const int64_t H = 128, A = c.T * c.k;
  DeviceBuffer d_idx = to_device(c.routing.expert), d_counts(size_t(c.E) * 4), d_offsets(size_t(c.E + 1) * 4),
               d_rows(size_t(A) * 4), d_slots(size_t(A) * 4), d_scratch(mf::cuda::plan_dispatch_scratch_bytes(c.E));
  const DispatchPlanView plan{d_counts.as<int32_t>(), d_offsets.as<int32_t>(), d_rows.as<int32_t>(),
                              d_slots.as<int32_t>()};
  const auto x = round_to_bf16(random_normal(size_t(c.T * H), 31));
  DeviceBuffer d_x = mf::cuda::upload_bf16(x), d_xp(size_t(A * H) * 2), d_gates = to_device(c.routing.gate),
               d_y = to_device(std::vector<float>(size_t(c.T * H), 0.f));
  sync();
  mf::cuda::plan_dispatch(d_idx.as<int32_t>(), c.T, c.k, c.E, c.capacity, plan, d_scratch.get(), stream.get());
  mf::cuda::permute_rows(d_x.as<mf::cuda::bf16>(), plan, c.T, c.k, H, d_xp.as<mf::cuda::bf16>(), stream.get());
  // The identity "expert": combine the permuted inputs straight back.
  mf::cuda::combine_rows(d_xp.as<mf::cuda::bf16>(), d_gates.as<float>(), plan, c.T, c.k, H, d_y.as<float>(),
                         stream.get());
  sync();
  std::vector<float> gathered(size_t(c.rows() * H)), want(size_t(c.T * H), 0.f);
  mf::moe_gather(x.data(), c.plan, H, gathered.data());
  mf::moe_scatter_add(gathered.data(), c.plan, H, want.data());
  EXPECT_LE(max_rel_err(to_host<float>(d_y, size_t(c.T * H)), want), 1e-6);
}

TEST(CudaMoeDispatchArgs, BadShapesThrowBeforeAnyLaunch) {
  const DispatchPlanView plan{};
  EXPECT_THROW(mf::cuda::permute_rows(nullptr, plan, 4, 9, 8, nullptr, nullptr), mf::Error);
  EXPECT_THROW(mf::cuda::permute_rows(nullptr, plan, 4, 2, 0, nullptr, nullptr), mf::Error);
  EXPECT_THROW(mf::cuda::plan_dispatch(nullptr, int64_t(1) << 31, 2, 8, 0, plan, nullptr, nullptr), mf::Error);
}

}  // namespace
