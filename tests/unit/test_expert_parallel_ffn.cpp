// The expert-parallel MoE layer (model/expert_parallel_ffn) of two ranks, played by two threads
// over a communicator that passes the all-to-alls between them: each rank routes its own rows
// (different counts on each), the experts run on the rank that holds them, and every rank gets
// the outputs and input gradients the layer gives it in one process, while each expert's weight
// gradient (the rows of both ranks) is on its holder alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <random>
#include <thread>

#include "core/error.h"
#include "model/moe_ffn.h"

namespace {

// What the two threads exchange: block [from][to] of each collective.
struct Exchange {
  std::barrier<> sync{2};
  std::vector<float> floats[2][2];
  std::vector<int64_t> ints[2][2];
};

class ThreadRank final : public mf::Communicator {
 public:
  ThreadRank(Exchange& x, int rank) : x_(x), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return 2; }
  std::string describe() const override { return "threads"; }
  std::string host() const override { return "here"; }
  void alltoall(std::span<const int64_t> send, std::span<int64_t> recv) override {
    const size_t block = send.size() / 2;
    for (int to = 0; to < 2; ++to) x_.ints[rank_][to].assign(send.begin() + to * block, send.begin() + (to + 1) * block);
    x_.sync.arrive_and_wait();
    for (int from = 0; from < 2; ++from) std::copy_n(x_.ints[from][rank_].begin(), block, recv.begin() + from * block);
    x_.sync.arrive_and_wait();  // nobody writes the next exchange before both have read this one
  }
  void alltoallv_rows(std::span<const float> send, std::span<const int64_t> send_rows, std::span<float> recv,
                      std::span<const int64_t> recv_rows, int64_t width) override {
    int64_t at = 0;
    for (int to = 0; to < 2; ++to) {
      x_.floats[rank_][to].assign(send.begin() + at * width, send.begin() + (at + send_rows[to]) * width);
      at += send_rows[to];
    }
    x_.sync.arrive_and_wait();
    at = 0;
    for (int from = 0; from < 2; ++from) {
      EXPECT_EQ(int64_t(x_.floats[from][rank_].size()), recv_rows[from] * width);
      std::copy(x_.floats[from][rank_].begin(), x_.floats[from][rank_].end(), recv.begin() + at * width);
      at += recv_rows[from];
    }
    x_.sync.arrive_and_wait();
  }
  // Not what the layer calls: a call fails the test.
  std::unique_ptr<mf::PendingCollective> start_allreduce_sum(std::span<float>) override { return unused(); }
  std::unique_ptr<mf::PendingCollective> start_reduce_scatter_sum(std::span<const float>, std::span<float>) override {
    return unused();
  }
  void allreduce_sum(std::span<double>) override { unused(); }
  void broadcast(std::span<std::byte>, int) override { unused(); }
  void allgather(std::span<const std::byte>, std::span<std::byte>) override { unused(); }
  void gather(std::span<const std::byte>, std::span<std::byte>, int) override { unused(); }
  std::unique_ptr<mf::Communicator> split(int, int) override { return unused(), nullptr; }
  void barrier() override { unused(); }
  void abort(int code) override { std::exit(code); }

 private:
  static std::unique_ptr<mf::PendingCollective> unused() {
    ADD_FAILURE() << "a collective the expert-parallel layer does not use was called";
    return nullptr;
  }
  Exchange& x_;
  int rank_;
};

constexpr int H = 8, I = 6, E = 4;

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 0.5f);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

// Weight gradients of every expert: gate, up, down.
struct ExpertGrads {
  std::vector<float> values = std::vector<float>(size_t(E) * 3 * I * H, 0.0f);
  std::vector<mf::SwigluGrads> bind() {
    std::vector<mf::SwigluGrads> out;
    for (int e = 0; e < E; ++e) {
      float* base = values.data() + size_t(e) * 3 * I * H;
      out.push_back({base, base + I * H, base + 2 * I * H});
    }
    return out;
  }
  std::span<const float> expert(int e) const { return {values.data() + size_t(e) * 3 * I * H, size_t(3 * I * H)}; }
};

struct RankResult {
  std::vector<float> y, dx;
  ExpertGrads grads;
};

// One rank's layer: forward and backward over its rows, the experts where `group` says (null: here).
RankResult run_layer(const mf::ModelConfig& c, const mf::MoeWeights& w, const std::vector<float>& x,
                     const std::vector<float>& dy, mf::ExpertGroup* group, ExpertGrads* shared_grads = nullptr) {
  const int64_t N = int64_t(x.size()) / H;
  RankResult r;
  r.y.assign(x.size(), 0.0f);
  r.dx.assign(x.size(), 0.0f);
  ExpertGrads& grads = shared_grads ? *shared_grads : r.grads;
  mf::MoeGrads g;
  g.experts = grads.bind();
  mf::MoeActs acts;
  mf::MoeScratch scratch;
  mf::moe_ffn_forward(c, w, x.data(), N, true, {}, acts, r.y.data(), true, group);
  mf::moe_ffn_backward(c, w, g, acts, x.data(), dy.data(), N, nullptr, {}, scratch, r.dx.data(), group);
  return r;
}

double max_relative_difference(std::span<const float> a, std::span<const float> b) {
  double scale = 1e-12, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, double(std::abs(b[i])));
    diff = std::max(diff, double(std::abs(a[i] - b[i])));
  }
  return diff / scale;
}

TEST(ExpertParallelFfn, TwoRanksGiveTheOneProcessLayer) {
  mf::ModelConfig c;
  c.model_type = "mixtral";
  c.hidden_size = H;
  c.intermediate_size = I;
  c.num_experts = E;
  c.top_k = 2;
  std::mt19937 rng(7);
  mf::MoeWeights w;
  w.router = mf::Tensor::from_f32({E, H}, random_values(E * H, rng));
  for (int e = 0; e < E; ++e)
    w.experts.push_back({mf::Tensor::from_f32({I, H}, random_values(I * H, rng)),
                         mf::Tensor::from_f32({I, H}, random_values(I * H, rng)),
                         mf::Tensor::from_f32({H, I}, random_values(H * I, rng))});
  const int64_t rows[2] = {5, 9};
  std::vector<float> x[2], dy[2];
  for (int r = 0; r < 2; ++r) {
    x[r] = random_values(size_t(rows[r] * H), rng);
    dy[r] = random_values(size_t(rows[r] * H), rng);
  }
  // One process: each rank's rows through every expert; the expert gradients summed over both.
  ExpertGrads reference_grads;
  RankResult reference[2];
  for (int r = 0; r < 2; ++r) reference[r] = run_layer(c, w, x[r], dy[r], nullptr, &reference_grads);

  Exchange exchange;
  RankResult split[2];
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      ThreadRank comm(exchange, r);
      mf::ExpertGroup group(comm);
      split[r] = run_layer(c, w, x[r], dy[r], &group);
      EXPECT_GT(group.stats().exchanges, 0);
    });
  for (std::thread& t : ranks) t.join();

  for (int r = 0; r < 2; ++r) {
    EXPECT_LE(max_relative_difference(split[r].y, reference[r].y), 1e-6) << "rank " << r;
    EXPECT_LE(max_relative_difference(split[r].dx, reference[r].dx), 1e-6) << "rank " << r;
  }
  // Experts 0-1 on rank 0, 2-3 on rank 1: each gradient whole on its holder, nothing elsewhere.
  for (int e = 0; e < E; ++e) {
    const int holder = e / 2;
    EXPECT_LE(max_relative_difference(split[holder].grads.expert(e), reference_grads.expert(e)), 1e-6) << "expert " << e;
    const std::span<const float> other = split[1 - holder].grads.expert(e);
    EXPECT_TRUE(std::all_of(other.begin(), other.end(), [](float v) { return v == 0.0f; })) << "expert " << e;
  }
}

TEST(ExpertParallelFfn, ExpertsMustSplitEvenlyOverTheGroup) {
  Exchange exchange;
  ThreadRank comm(exchange, 0);
  const mf::ExpertGroup group(comm);
  EXPECT_NO_THROW(group.check_divides(4, 0));
  try {
    group.check_divides(3, 1);
    ADD_FAILURE() << "3 experts over 2 ranks were accepted";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 1 has 3 experts"), std::string::npos) << e.what();
  }
  EXPECT_EQ(group.owner(3, 4), 1);
  EXPECT_EQ(group.first(8), 0);
  EXPECT_TRUE(group.holds(1, 4));
  EXPECT_FALSE(group.holds(2, 4));
}

}  // namespace
