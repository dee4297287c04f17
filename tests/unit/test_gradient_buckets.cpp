// GradientBuckets over a recording communicator that acts as a job of two identical ranks (the sum
// doubles every value, applied only when the collective is waited for): buckets follow the parts
// and the size cap, start in part order whatever the reports, start during backward when a part
// is reported, and finish() writes the sums back into every gradient; empty gradients send nothing.
#include <gtest/gtest.h>

#include <vector>

#include "dist/gradient_buckets.h"

namespace {

class TwoEqualRanks final : public mf::Communicator {
 public:
  struct Started {
    size_t values;
    bool waited = false;
  };
  std::vector<Started> started;

  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string describe() const override { return "test"; }
  std::string host() const override { return "here"; }
  std::unique_ptr<mf::PendingCollective> start_allreduce_sum(std::span<float> data) override {
    started.push_back({data.size()});
    return std::make_unique<Pending>(data, started.size() - 1, this);
  }
  std::unique_ptr<mf::PendingCollective> start_reduce_scatter_sum(std::span<const float> in,
                                                                  std::span<float> out) override {
    // Rank 0's block of the sum of two equal inputs.
    EXPECT_EQ(in.size(), 2 * out.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = 2 * in[i];
    started.push_back({in.size(), true});
    return std::make_unique<Pending>(std::span<float>(), started.size() - 1, this);
  }
  void allreduce_sum(std::span<double> data) override {
    for (double& v : data) v *= 2;
  }
  void broadcast(std::span<std::byte>, int) override {}
  void allgather(std::span<const std::byte>, std::span<std::byte>) override {}
  void gather(std::span<const std::byte> mine, std::span<std::byte> all, int) override { allgather(mine, all); }
  void barrier() override {}
  void abort(int code) override { std::exit(code); }
  // Expert parallelism's collectives are not what this test plays: a call fails it.
  void alltoall(std::span<const int64_t>, std::span<int64_t>) override { ADD_FAILURE() << "alltoall called"; }
  void alltoallv_rows(std::span<const float>, std::span<const int64_t>, std::span<float>, std::span<const int64_t>,
                      int64_t) override {
    ADD_FAILURE() << "alltoallv called";
  }
  std::unique_ptr<mf::Communicator> split(int, int) override {
    ADD_FAILURE() << "split called";
    return nullptr;
  }

 private:
  struct Pending final : mf::PendingCollective {
    Pending(std::span<float> d, size_t i, TwoEqualRanks* c) : data(d), index(i), comm(c) {}
    bool test() override { return done; }
    void wait() override {
      if (done) return;
      for (float& v : data) v *= 2;
      comm->started[index].waited = true;
      done = true;
    }
    std::span<float> data;
    size_t index;
    TwoEqualRanks* comm;
    bool done = false;
  };
};

TEST(GradientBuckets, SumsEveryGradientInBucketsStartedInPartOrder) {
  std::vector<float> head(3, 1.0f), layer1a(4, 2.0f), layer1b(5, 3.0f), layer0(6, 4.0f), embed(2, 5.0f), none;
  TwoEqualRanks comm;
  // Parts: 0 head, 1 layer 1, 2 layer 0, 3 embedding; a cap of 8 floats splits layer 1 in two.
  mf::GradientBuckets buckets(comm,
                              {{"embed", embed, 3},
                               {"l1.a", layer1a, 1},
                               {"head", head, 0},
                               {"l1.b", layer1b, 1},
                               {"l0", layer0, 2},
                               {"frozen", none, 1}},
                              8 * sizeof(float));
  EXPECT_EQ(buckets.stats().buckets, 5);
  EXPECT_EQ(buckets.stats().values, 20);
  for (int step = 0; step < 2; ++step) {
    comm.started.clear();
    buckets.begin_step();
    buckets.part_done(1);  // the head's part was not reported: it starts first anyway
    ASSERT_EQ(comm.started.size(), 3u);
    EXPECT_EQ(comm.started[0].values, 3u);
    EXPECT_EQ(comm.started[1].values, 4u);
    EXPECT_EQ(comm.started[2].values, 5u);
    EXPECT_EQ(buckets.stats().started_in_backward, 3);
    buckets.finish();  // starts layer 0 and the embedding, waits for all
    ASSERT_EQ(comm.started.size(), 5u);
    EXPECT_EQ(comm.started[3].values, 6u);
    EXPECT_EQ(comm.started[4].values, 2u);
    for (const auto& s : comm.started) EXPECT_TRUE(s.waited);
    const float scale = step == 0 ? 2.0f : 4.0f;  // the sums are written back, then summed again
    for (float v : head) EXPECT_EQ(v, 1.0f * scale);
    for (float v : layer1a) EXPECT_EQ(v, 2.0f * scale);
    for (float v : layer1b) EXPECT_EQ(v, 3.0f * scale);
    for (float v : layer0) EXPECT_EQ(v, 4.0f * scale);
    for (float v : embed) EXPECT_EQ(v, 5.0f * scale);
  }
}

// ZeRO-1: each bucket padded to two equal blocks, rank 0 gets the sums of its block, the
// gradients themselves are left as they were (the sharded optimizer reads the shard).
TEST(GradientBuckets, ReduceScatterLeavesEachRankItsBlock) {
  std::vector<float> a(3, 1.0f), b(2, 2.0f);
  TwoEqualRanks comm;
  mf::GradientBuckets buckets(comm, {{"a", a, 0}, {"b", b, 0}}, 1 << 20, mf::GradientReduction::kReduceScatter);
  ASSERT_EQ(buckets.bucket_count(), 1u);
  const mf::BucketLayout& layout = buckets.layout(0);
  EXPECT_EQ(layout.size, 5u);
  EXPECT_EQ(layout.block, 3u);  // 5 values padded to 6 over two ranks
  ASSERT_EQ(layout.segments.size(), 2u);
  EXPECT_EQ(layout.segments[1].name, "b");
  EXPECT_EQ(layout.segments[1].offset, 3u);
  buckets.begin_step();
  buckets.finish();
  ASSERT_EQ(comm.started.size(), 1u);
  EXPECT_EQ(comm.started[0].values, 6u);
  const std::span<float> shard = buckets.shard(0);
  ASSERT_EQ(shard.size(), 3u);
  for (float v : shard) EXPECT_EQ(v, 2.0f);  // a's three values, summed over the two ranks
  for (float v : a) EXPECT_EQ(v, 1.0f);
  for (float v : b) EXPECT_EQ(v, 2.0f);
}

}  // namespace
