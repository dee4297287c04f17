// CUDA AdamW over segments of one master buffer, gradient norm, clipping and conversions,
// against the CPU optimizer (train/optimizer.h) and kernels (kernels/cpu/adamw.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/trainable_param.h"
#include "cuda_test_util.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/device.h"
#include "train/optimizer.h"

namespace {

using namespace mf::cuda;
using mf::cuda::testing::kF32Tol;
using mf::cuda::testing::max_rel_err;
using mf::cuda::testing::random_normal;
using mf::cuda::testing::round_to_bf16;

class CudaAdamw : public mf::cuda::testing::CudaTest {};

void sync_device() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

// Sizes chosen so that some segments start on a multiple of 4 (16-byte path, with and without a
// tail) and others do not (element by element); 20000 is split into several pieces.
const std::vector<int64_t> kSizes = {4096, 576, 20000, 1001, 185, 3, 8};
const std::vector<mf::ParamGroup> kGroups = {{"decay", 1e-2f, 0.1f}, {"no_decay", 3e-3f, 0.0f}};
const mf::AdamW::Betas kBetas{0.9f, 0.95f, 1e-8f};
const float kLrMultipliers[] = {1.0f, 0.8f, 0.5f, 0.25f, 0.1f};

struct Trajectory {
  std::vector<float> master, m, v, norms;
};

std::vector<float> step_grads(int step, int64_t total) { return random_normal(size_t(total), 100 + uint64_t(step), 0.1f); }

Trajectory run_cpu(const std::vector<float>& init, int64_t total, float max_norm) {
  std::vector<std::vector<float>> values, grads;
  int64_t offset = 0;
  for (int64_t size : kSizes) {
    values.emplace_back(init.begin() + offset, init.begin() + offset + size);
    grads.emplace_back(size_t(size), 0.0f);
    offset += size;
  }
  std::vector<mf::TrainableParam> params;
  std::vector<std::span<float>> grad_spans;
  for (size_t i = 0; i < kSizes.size(); ++i) {
    params.push_back({"p" + std::to_string(i), values[i], grads[i], int(i % 2)});
    grad_spans.emplace_back(grads[i]);
  }
  mf::AdamW opt(kGroups, params, kBetas);
  Trajectory run;
  for (int s = 0; s < int(std::size(kLrMultipliers)); ++s) {
    const auto g = step_grads(s, total);
    offset = 0;
    for (auto& gi : grads) {
      std::copy(g.begin() + offset, g.begin() + offset + int64_t(gi.size()), gi.begin());
      offset += int64_t(gi.size());
    }
    run.norms.push_back(float(mf::clip_grad_norm(grad_spans, max_norm)));
    opt.step(kLrMultipliers[s]);
  }
  for (size_t i = 0; i < kSizes.size(); ++i) {
    run.master.insert(run.master.end(), values[i].begin(), values[i].end());
    run.m.insert(run.m.end(), opt.exp_avg(i).begin(), opt.exp_avg(i).end());
    run.v.insert(run.v.end(), opt.exp_avg_sq(i).begin(), opt.exp_avg_sq(i).end());
  }
  return run;
}

// clip: grad_sumsq -> clip_grad_norm_factor -> folded into the update; otherwise no grad_scale.
Trajectory run_gpu(const std::vector<float>& init, int64_t total, float max_norm, bool clip, bool with_compute,
            std::vector<float>* compute_out) {
  std::vector<AdamwSegment> segments;
  int64_t offset = 0;
  for (size_t i = 0; i < kSizes.size(); ++i) {
    segments.push_back({offset, kSizes[i], int32_t(i % 2)});
    offset += kSizes[i];
  }
  const auto pieces = split_adamw_segments(segments, 1024);
  check_adamw_segments(pieces, total, int(kGroups.size()));
  DeviceBuffer dsegs(pieces.size() * sizeof(AdamwSegment));
  dsegs.upload(pieces.data(), pieces.size() * sizeof(AdamwSegment));
  DeviceBuffer master = upload_f32(init), grads(size_t(total) * sizeof(float));
  DeviceBuffer m(size_t(total) * sizeof(float)), v(size_t(total) * sizeof(float));
  DeviceBuffer compute(with_compute ? size_t(total) * sizeof(bf16) : 0);
  DeviceBuffer scalars(3 * sizeof(float)), scratch(grad_sumsq_scratch_bytes(total));
  m.zero();
  v.zero();
  float* sumsq = scalars.as<float>();
  float* factor = sumsq + 1;
  float* norm = sumsq + 2;
  Stream stream;
  Trajectory run;
  for (int s = 0; s < int(std::size(kLrMultipliers)); ++s) {
    const auto g = step_grads(s, total);
    grads.upload(g.data(), g.size() * sizeof(float));
    sync_device();
    std::vector<AdamwGroup> groups;
    for (const mf::ParamGroup& pg : kGroups)
      groups.push_back({pg.lr * kLrMultipliers[s], pg.weight_decay, kBetas.beta1, kBetas.beta2, kBetas.eps});
    if (clip) {
      grad_sumsq(grads.as<float>(), total, sumsq, scratch.get(), stream.get());
      clip_grad_norm_factor(sumsq, max_norm, factor, norm, stream.get());
    }
    adamw_update(master.as<float>(), grads.as<float>(), m.as<float>(), v.as<float>(),
                 with_compute ? compute.as<bf16>() : nullptr, dsegs.as<AdamwSegment>(), int64_t(pieces.size()),
                 groups, s + 1, clip ? factor : nullptr, stream.get());
    stream.synchronize();
    if (clip) run.norms.push_back(download_f32(norm, 1)[0]);
  }
  run.master = download_f32(master.as<float>(), size_t(total));
  run.m = download_f32(m.as<float>(), size_t(total));
  run.v = download_f32(v.as<float>(), size_t(total));
  if (with_compute) *compute_out = download_bf16(compute.as<bf16>(), size_t(total));
  return run;
}

int64_t total_size() {
  int64_t total = 0;
  for (int64_t s : kSizes) total += s;
  return total;
}

TEST_F(CudaAdamw, StepsWithClippingMatchCpuOptimizer) {
  const int64_t total = total_size();
  const auto init = random_normal(size_t(total), 1);
  const float max_norm = 10.0f;  // the gradients' norm is ~16: every step clips
  const Trajectory cpu = run_cpu(init, total, max_norm);
  std::vector<float> compute;
  const Trajectory gpu = run_gpu(init, total, max_norm, true, true, &compute);
  ASSERT_EQ(gpu.norms.size(), cpu.norms.size());
  for (size_t s = 0; s < cpu.norms.size(); ++s) {
    EXPECT_GT(cpu.norms[s], max_norm);
    EXPECT_NEAR(gpu.norms[s], cpu.norms[s], 1e-5 * cpu.norms[s]) << "step " << s;
  }
  EXPECT_LT(max_rel_err(gpu.master, cpu.master), kF32Tol);
  EXPECT_LT(max_rel_err(gpu.m, cpu.m), kF32Tol);
  EXPECT_LT(max_rel_err(gpu.v, cpu.v), kF32Tol);
  EXPECT_EQ(compute, round_to_bf16(gpu.master));  // the bf16 copy is the rounded master
}

TEST_F(CudaAdamw, StepsWithoutClippingMatchCpuOptimizer) {
  const int64_t total = total_size();
  const auto init = random_normal(size_t(total), 2);
  const Trajectory cpu = run_cpu(init, total, 0.0f);
  const Trajectory gpu = run_gpu(init, total, 0.0f, false, false, nullptr);
  EXPECT_LT(max_rel_err(gpu.master, cpu.master), kF32Tol);
  EXPECT_LT(max_rel_err(gpu.m, cpu.m), kF32Tol);
  EXPECT_LT(max_rel_err(gpu.v, cpu.v), kF32Tol);
}

// A norm below max_norm: factor 1 (the CPU does not scale at all).
TEST_F(CudaAdamw, ClipFactorIsOneBelowMaxNorm) {
  const auto g = random_normal(1000, 3, 0.01f);
  DeviceBuffer dg = upload_f32(g), scalars(3 * sizeof(float)), scratch(grad_sumsq_scratch_bytes(1000));
  Stream stream;
  sync_device();
  grad_sumsq(dg.as<float>(), 1000, scalars.as<float>(), scratch.get(), stream.get());
  clip_grad_norm_factor(scalars.as<float>(), 1.0f, scalars.as<float>() + 1, scalars.as<float>() + 2, stream.get());
  stream.synchronize();
  const auto got = download_f32(scalars.as<float>(), 3);
  EXPECT_EQ(got[1], 1.0f);
  EXPECT_NEAR(got[2], std::sqrt(mf::sum_of_squares(g.data(), 1000)), 1e-6);
}

TEST_F(CudaAdamw, GradSumsqMatchesCpuAndIsDeterministic) {
  for (int64_t n : {int64_t(1), int64_t(37), int64_t(1001), int64_t(3000001)}) {
    for (int shift : {0, 1}) {  // 16-byte path, then element by element
      SCOPED_TRACE("n=" + std::to_string(n) + " shift=" + std::to_string(shift));
      const auto x = random_normal(size_t(n + shift), uint64_t(n));
      const double want = mf::sum_of_squares(x.data() + shift, n);
      DeviceBuffer dx = upload_f32(x), out(2 * sizeof(float)), scratch(grad_sumsq_scratch_bytes(n));
      Stream stream;
      sync_device();
      grad_sumsq(dx.as<float>() + shift, n, out.as<float>(), scratch.get(), stream.get());
      grad_sumsq(dx.as<float>() + shift, n, out.as<float>() + 1, scratch.get(), stream.get());
      stream.synchronize();
      const auto got = download_f32(out.as<float>(), 2);
      EXPECT_NEAR(got[0], want, 1e-6 * want);
      EXPECT_EQ(got[0], got[1]);
    }
  }
}

TEST_F(CudaAdamw, ScaleInPlaceMatchesCpu) {
  for (int shift : {0, 1}) {
    const int64_t n = 1001;
    const auto x = random_normal(size_t(n + shift), 4);
    const float f = 0.37f;
    auto want = x;
    mf::scale_inplace(want.data() + shift, n, f);
    DeviceBuffer a = upload_f32(x), b = upload_f32(x), factor = upload_f32(std::vector<float>{f});
    Stream stream;
    sync_device();
    scale_in_place(a.as<float>() + shift, n, factor.as<float>(), stream.get());
    scale_in_place(b.as<float>() + shift, n, f, stream.get());
    stream.synchronize();
    EXPECT_EQ(download_f32(a.as<float>(), x.size()), want);
    EXPECT_EQ(download_f32(b.as<float>(), x.size()), want);
  }
}

TEST_F(CudaAdamw, ConvertToBf16RoundsToNearestEven) {
  for (int shift : {0, 1}) {
    const int64_t n = 1001;
    const auto x = random_normal(size_t(n + shift), 5, 3.0f);
    DeviceBuffer src = upload_f32(x), dst(size_t(n + shift) * sizeof(bf16));
    Stream stream;
    sync_device();
    convert_f32_to_bf16(src.as<float>() + shift, dst.as<bf16>() + shift, n, stream.get());
    stream.synchronize();
    const auto got = download_bf16(dst.as<bf16>() + shift, size_t(n));
    EXPECT_EQ(got, round_to_bf16(std::vector<float>(x.begin() + shift, x.end())));
  }
}

// Host-only helpers: these run without a GPU too.
TEST(AdamwSegments, SplitIntoPiecesOfAtMostMaxCount) {
  const std::vector<AdamwSegment> segments = {{0, 10, 0}, {10, 3, 1}, {13, 0, 0}};
  const auto pieces = split_adamw_segments(segments, 4);
  ASSERT_EQ(pieces.size(), 4u);
  EXPECT_EQ(pieces[0].offset, 0);
  EXPECT_EQ(pieces[0].count, 4);
  EXPECT_EQ(pieces[2].offset, 8);
  EXPECT_EQ(pieces[2].count, 2);
  EXPECT_EQ(pieces[3].offset, 10);
  EXPECT_EQ(pieces[3].count, 3);
  EXPECT_EQ(pieces[3].group, 1);
  EXPECT_THROW(split_adamw_segments(segments, 6), mf::Error);
}

TEST(AdamwSegments, CheckNamesBadSegments) {
  const std::vector<AdamwSegment> ok = {{0, 10, 0}, {10, 3, 1}};
  EXPECT_NO_THROW(check_adamw_segments(ok, 13, 2));
  EXPECT_THROW(check_adamw_segments(ok, 12, 2), mf::Error);
  EXPECT_THROW(check_adamw_segments(ok, 13, 1), mf::Error);
}

}  // namespace
