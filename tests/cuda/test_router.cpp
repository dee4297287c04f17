// CUDA router (kernels/cuda/router.h) against the CPU routing (mf::route / mf::route_backward)
// and the CPU auxiliary losses (kernels/cpu/router.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "cuda_test_util.h"
#include "kernels/cpu/router.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/router.h"
#include "moe/routing.h"

namespace {

using mf::cuda::DeviceBuffer;
using mf::cuda::TopKGating;
using mf::cuda::testing::max_rel_err;
using mf::cuda::testing::random_normal;

class CudaRouter : public mf::cuda::testing::CudaTest {};

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

double max_abs_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0;
  for (size_t i = 0; i < want.size(); ++i) err = std::max(err, double(std::fabs(got[i] - want[i])));
  return err;
}

struct Kind {
  TopKGating kind;
  mf::RouterPolicy policy;
  bool renorm;
  const char* name;
};
const Kind kKinds[] = {
    {TopKGating::SoftmaxTopK, mf::RouterPolicy::SoftmaxTopK, true, "softmax_topk"},
    {TopKGating::SoftmaxTopK, mf::RouterPolicy::SoftmaxTopK, false, "softmax_topk_unnormalised"},
    {TopKGating::TopKSoftmax, mf::RouterPolicy::TopKSoftmax, true, "topk_softmax"},
    {TopKGating::Switch, mf::RouterPolicy::Switch, false, "switch"},
};

mf::RouteOptions options(const Kind& kind, int k, double capacity_factor, const std::vector<float>& bias) {
  mf::RouteOptions o;
  o.policy = kind.policy;
  o.top_k = k;
  o.renormalize = kind.renorm;
  o.capacity_factor = capacity_factor;
  o.selection_bias = bias.empty() ? nullptr : bias.data();
  return o;
}

std::string label(int64_t T, int E, int k, const Kind& kind) {
  return "rows=" + std::to_string(T) + " E=" + std::to_string(E) + " k=" + std::to_string(k) + " " + kind.name;
}

// GPU forward against mf::route: indices exactly, gates and probabilities to fp32 rounding.
void check_forward(const std::vector<float>& logits, int64_t T, int E, int k, const Kind& kind,
                   const std::vector<float>& bias, cudaStream_t stream) {
  mf::Routing r;
  mf::route(logits.data(), T, E, options(kind, k, 0.0, bias), r);
  ASSERT_EQ(r.slots, k);
  DeviceBuffer d_logits = to_device(logits), d_bias = to_device(bias);
  DeviceBuffer d_probs(size_t(T * E) * 4), d_idx(size_t(T * k) * 4), d_gates(size_t(T * k) * 4);
  sync();
  mf::cuda::router_topk_forward(d_logits.as<float>(), T, E, k, kind.kind, kind.renorm,
                                bias.empty() ? nullptr : d_bias.as<float>(), d_probs.as<float>(),
                                d_idx.as<int32_t>(), d_gates.as<float>(), stream);
  sync();
  EXPECT_EQ(to_host<int32_t>(d_idx, size_t(T * k)), r.expert);
  EXPECT_LE(max_abs_diff(to_host<float>(d_gates, size_t(T * k)), r.gate), 1e-6);
  EXPECT_LE(max_abs_diff(to_host<float>(d_probs, size_t(T * E)), r.probs), 1e-6);
}

TEST_F(CudaRouter, ForwardMatchesCpuRoute) {
  mf::cuda::Stream stream;
  uint64_t seed = 100;
  for (int64_t T : {1, 37, 1000})
    for (int E : {8, 64})
      for (int k : {1, 2})
        for (const Kind& kind : kKinds)
          for (bool biased : {false, true}) {
            if (kind.kind == TopKGating::Switch && k != 1) continue;
            SCOPED_TRACE(label(T, E, k, kind) + (biased ? " biased" : ""));
            const auto logits = random_normal(size_t(T * E), ++seed, 2.0f);
            const auto bias = biased ? random_normal(size_t(E), ++seed, 0.05f) : std::vector<float>{};
            check_forward(logits, T, E, k, kind, bias, stream.get());
          }
  // The largest shapes a warp takes: 8 experts per lane, 8 slots.
  for (const Kind& kind : {kKinds[0], kKinds[2]}) {
    SCOPED_TRACE(label(37, 256, 8, kind));
    const auto logits = random_normal(37 * 256, ++seed, 2.0f);
    const auto bias = random_normal(256, ++seed, 0.01f);
    check_forward(logits, 37, 256, 8, kind, bias, stream.get());
  }
  SCOPED_TRACE("E=200, not a multiple of 32");
  check_forward(random_normal(37 * 200, ++seed), 37, 200, 3, kKinds[0], {}, stream.get());
}

TEST_F(CudaRouter, TiesGoToTheLowerExpertAsOnTheCpu) {
  mf::cuda::Stream stream;
  for (int E : {8, 64})
    for (int k : {1, 2})
      for (const Kind& kind : kKinds) {
        if (kind.kind == TopKGating::Switch && k != 1) continue;
        SCOPED_TRACE(label(1000, E, k, kind));
        // Logits from {0, 1, 2}: most rows have tied maxima; row 0 is all equal.
        mf::Rng rng(uint64_t(7 * E + k));
        std::vector<float> logits(size_t(1000 * E));
        for (auto& x : logits) x = float(rng.below(3));
        std::fill(logits.begin(), logits.begin() + E, 0.5f);
        check_forward(logits, 1000, E, k, kind, {}, stream.get());
        // Ties in the bias too (it moves the selection, not the gates).
        std::vector<float> bias(size_t(E), 0.0f);
        for (int e = 0; e < E; e += 3) bias[size_t(e)] = 0.25f;
        check_forward(logits, 1000, E, k, kind, bias, stream.get());
      }
  // Direct check of the rule: an all-equal row picks experts 0, 1, ... in order.
  std::vector<float> logits(16, 1.0f);
  DeviceBuffer d_logits = to_device(logits), d_idx(2 * 4), d_gates(2 * 4);
  sync();
  mf::cuda::router_topk_forward(d_logits.as<float>(), 1, 16, 2, TopKGating::SoftmaxTopK, true, nullptr, nullptr,
                                d_idx.as<int32_t>(), d_gates.as<float>(), stream.get());
  sync();
  EXPECT_EQ(to_host<int32_t>(d_idx, 2), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(to_host<float>(d_gates, 2), (std::vector<float>{0.5f, 0.5f}));
}

// GPU backward on the CPU routing's own outputs against mf::route_backward (dropped slots
// marked through row_of_slot, as the dispatch plan marks them).
void check_backward(int64_t T, int E, int k, const Kind& kind, double capacity_factor, uint64_t seed,
                    cudaStream_t stream) {
  auto logits = random_normal(size_t(T * E), seed, 2.0f);
  for (int64_t t = 0; t < T; ++t) logits[size_t(t * E)] += 4.0f;  // skewed, so a capacity drops slots
  const auto o = options(kind, k, capacity_factor, {});
  mf::Routing r;
  mf::route(logits.data(), T, E, o, r);
  const auto dgate = random_normal(size_t(T * k), seed + 1);
  std::vector<float> want(size_t(T * E), 0.0f);
  mf::route_backward(logits.data(), r, o, dgate.data(), want.data());
  std::vector<int32_t> row_of_slot(size_t(T * k));
  for (size_t a = 0; a < row_of_slot.size(); ++a) row_of_slot[a] = r.kept[a] ? int32_t(a) : -1;
  if (capacity_factor > 0 && T >= 37) {
    EXPECT_GT(r.dropped, 0);
  }

  DeviceBuffer d_probs = to_device(r.probs), d_idx = to_device(r.expert), d_gates = to_device(r.gate),
               d_dgates = to_device(dgate), d_rows = to_device(row_of_slot);
  DeviceBuffer d_dlogits = to_device(std::vector<float>(size_t(T * E), 7.0f));  // written, not accumulated
  sync();
  mf::cuda::router_topk_backward(d_probs.as<float>(), d_idx.as<int32_t>(), d_gates.as<float>(),
                                 d_dgates.as<float>(), d_rows.as<int32_t>(), T, E, k, kind.kind, kind.renorm,
                                 d_dlogits.as<float>(), stream);
  sync();
  EXPECT_LT(max_rel_err(to_host<float>(d_dlogits, size_t(T * E)), want), 1e-5);
}

TEST_F(CudaRouter, BackwardMatchesCpuRouteBackward) {
  mf::cuda::Stream stream;
  uint64_t seed = 500;
  for (int64_t T : {1, 37, 1000})
    for (int E : {8, 64})
      for (int k : {1, 2})
        for (const Kind& kind : kKinds)
          for (double capacity_factor : {0.0, 0.5}) {
            if (kind.kind == TopKGating::Switch && k != 1) continue;
            SCOPED_TRACE(label(T, E, k, kind) + " capacity_factor=" + std::to_string(capacity_factor));
            check_backward(T, E, k, kind, capacity_factor, seed += 2, stream.get());
          }
  SCOPED_TRACE("E=256 k=8");
  check_backward(37, 256, 8, kKinds[0], 0.0, seed += 2, stream.get());
  check_backward(37, 256, 8, kKinds[2], 0.0, seed += 2, stream.get());
}

enum class Mask { None, Some, Nothing };

void check_aux(int64_t T, int E, int k, Mask mask_kind, uint64_t seed, cudaStream_t stream) {
  const auto logits = random_normal(size_t(T * E), seed, 2.0f);
  mf::Routing r;
  mf::route(logits.data(), T, E, options(kKinds[0], k, 0.0, {}), r);
  std::vector<uint8_t> mask(size_t(T), 1);
  mf::Rng rng(seed + 1);
  if (mask_kind == Mask::Some)
    for (auto& m : mask) m = rng.uniform() < 0.7f ? 1 : 0;
  if (mask_kind == Mask::Nothing) std::fill(mask.begin(), mask.end(), 0);
  const uint8_t* cpu_mask = mask_kind == Mask::None ? nullptr : mask.data();

  const double lb = mf::load_balancing_loss(logits.data(), r.expert.data(), cpu_mask, T, E, k, 0.0f, nullptr);
  const double z = mf::router_z_loss(logits.data(), cpu_mask, T, E, 0.0f, nullptr);
  const float lb_coef = 0.5f, z_coef = 0.1f, grad_scale = 0.25f;
  const auto base = random_normal(size_t(T * E), seed + 2, 1e-4f);
  auto want = base;
  mf::router_z_loss(logits.data(), cpu_mask, T, E, z_coef * grad_scale, want.data());
  mf::load_balancing_loss(logits.data(), r.expert.data(), cpu_mask, T, E, k, lb_coef * grad_scale, want.data());

  DeviceBuffer d_logits = to_device(logits), d_idx = to_device(r.expert), d_mask = to_device(mask),
               d_dlogits = to_device(base), d_out(2 * 4),
               d_scratch(mf::cuda::router_aux_scratch_bytes(T, E), "aux scratch");
  const uint8_t* gpu_mask = mask_kind == Mask::None ? nullptr : d_mask.as<uint8_t>();
  sync();
  mf::cuda::router_aux_forward(d_logits.as<float>(), d_idx.as<int32_t>(), T, E, k, gpu_mask, d_out.as<float>(),
                               d_scratch.get(), stream);
  mf::cuda::router_aux_backward(d_logits.as<float>(), d_idx.as<int32_t>(), T, E, k, gpu_mask, lb_coef, z_coef,
                                grad_scale, d_dlogits.as<float>(), d_scratch.get(), stream);
  sync();
  const auto out = to_host<float>(d_out, 2);
  EXPECT_NEAR(out[0], lb, 1e-5 * std::max(1.0, std::fabs(lb)));
  EXPECT_NEAR(out[1], z, 1e-5 * std::max(1.0, std::fabs(z)));
  const auto got = to_host<float>(d_dlogits, size_t(T * E));
  if (mask_kind == Mask::Nothing) {
    EXPECT_EQ(out[0], 0.0f);
    EXPECT_EQ(out[1], 0.0f);
    EXPECT_EQ(got, base);
  } else {
    EXPECT_LT(max_rel_err(got, want), 1e-5);
  }
}

TEST_F(CudaRouter, AuxLossesMatchCpu) {
  mf::cuda::Stream stream;
  uint64_t seed = 900;
  for (int64_t T : {1, 37, 1000})
    for (int E : {8, 64})
      for (int k : {1, 2})
        for (Mask m : {Mask::None, Mask::Some, Mask::Nothing}) {
          SCOPED_TRACE("rows=" + std::to_string(T) + " E=" + std::to_string(E) + " k=" + std::to_string(k) +
                       " mask=" + std::to_string(int(m)));
          check_aux(T, E, k, m, seed += 3, stream.get());
        }
  SCOPED_TRACE("many blocks: rows=70001 E=256 k=8");
  check_aux(70001, 256, 8, Mask::Some, seed += 3, stream.get());
}

TEST_F(CudaRouter, ResultsAreBitReproducible) {
  mf::cuda::Stream stream;
  const int64_t T = 5000;
  const int E = 64, k = 2;
  const auto logits = random_normal(size_t(T * E), 11, 2.0f);
  DeviceBuffer d_logits = to_device(logits), d_probs(size_t(T * E) * 4), d_idx(size_t(T * k) * 4),
               d_gates(size_t(T * k) * 4), d_out(2 * 4), d_scratch(mf::cuda::router_aux_scratch_bytes(T, E));
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    DeviceBuffer d_dlogits = to_device(std::vector<float>(size_t(T * E), 0.0f));
    sync();
    mf::cuda::router_topk_forward(d_logits.as<float>(), T, E, k, TopKGating::SoftmaxTopK, true, nullptr,
                                  d_probs.as<float>(), d_idx.as<int32_t>(), d_gates.as<float>(), stream.get());
    mf::cuda::router_aux_forward(d_logits.as<float>(), d_idx.as<int32_t>(), T, E, k, nullptr, d_out.as<float>(),
                                 d_scratch.get(), stream.get());
    mf::cuda::router_aux_backward(d_logits.as<float>(), d_idx.as<int32_t>(), T, E, k, nullptr, 0.01f, 0.001f, 1.0f,
                                  d_dlogits.as<float>(), d_scratch.get(), stream.get());
    sync();
    auto all = to_host<float>(d_out, 2);
    const auto g = to_host<float>(d_gates, size_t(T * k)), d = to_host<float>(d_dlogits, size_t(T * E));
    all.insert(all.end(), g.begin(), g.end());
    all.insert(all.end(), d.begin(), d.end());
    if (run == 0)
      first = all;
    else
      EXPECT_EQ(std::memcmp(first.data(), all.data(), all.size() * sizeof(float)), 0);
  }
}

TEST_F(CudaRouter, ExpertCountsMatchCpu) {
  mf::cuda::Stream stream;
  const int64_t T = 1000;
  const int E = 64, k = 2;
  auto logits = random_normal(size_t(T * E), 21, 2.0f);
  for (int64_t t = 0; t < T; ++t) logits[size_t(t * E + 3)] += 2.0f;
  mf::RouteOptions o = options(kKinds[0], k, 1.0, {});
  mf::Routing r;
  mf::route(logits.data(), T, E, o, r);
  ASSERT_GT(r.dropped, 0);
  std::vector<uint8_t> mask(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) mask[size_t(t)] = t % 3 != 0;
  std::vector<int32_t> row_of_slot(size_t(T * k));
  for (size_t a = 0; a < row_of_slot.size(); ++a) row_of_slot[a] = r.kept[a] ? 0 : -1;
  DeviceBuffer d_idx = to_device(r.expert), d_mask = to_device(mask), d_rows = to_device(row_of_slot),
               d_counts(size_t(E) * 4);
  for (bool masked : {false, true})
    for (bool kept_only : {false, true}) {
      std::vector<int32_t> want(size_t(E), 0);
      for (int64_t a = 0; a < T * k; ++a)
        if ((!masked || mask[size_t(a / k)]) && (!kept_only || r.kept[size_t(a)])) ++want[size_t(r.expert[size_t(a)])];
      sync();
      mf::cuda::router_expert_counts(d_idx.as<int32_t>(), kept_only ? d_rows.as<int32_t>() : nullptr,
                                     masked ? d_mask.as<uint8_t>() : nullptr, T, k, E, d_counts.as<int32_t>(),
                                     stream.get());
      sync();
      EXPECT_EQ(to_host<int32_t>(d_counts, size_t(E)), want) << "masked=" << masked << " kept_only=" << kept_only;
    }
}

TEST(CudaRouterArgs, BadShapesThrowBeforeAnyLaunch) {
  EXPECT_THROW(mf::cuda::router_topk_forward(nullptr, 4, 300, 2, TopKGating::SoftmaxTopK, true, nullptr, nullptr,
                                             nullptr, nullptr, nullptr),
               mf::Error);
  EXPECT_THROW(mf::cuda::router_topk_forward(nullptr, 4, 8, 9, TopKGating::SoftmaxTopK, true, nullptr, nullptr,
                                             nullptr, nullptr, nullptr),
               mf::Error);
  EXPECT_THROW(mf::cuda::router_topk_forward(nullptr, 4, 8, 2, TopKGating::Switch, false, nullptr, nullptr, nullptr,
                                             nullptr, nullptr),
               mf::Error);
}

}  // namespace
