// DataParallel's bookkeeping as rank 0 of a two-rank job, over a communicator that plays the other
// rank: which micro-batches are this rank's, loss parts summed, and the replica check at
// checkpoints, which must stop the run (naming the rank) when rank 1's state differs.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "model/init.h"
#include "train/data_parallel.h"

namespace {

class OtherRank final : public mf::Communicator {
 public:
  bool drifted = false;  // rank 1's state hash differs from ours

  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string describe() const override { return "test"; }
  std::string host() const override { return "here"; }
  std::unique_ptr<mf::PendingCollective> start_allreduce_sum(std::span<float>) override { return done(); }
  std::unique_ptr<mf::PendingCollective> start_reduce_scatter_sum(std::span<const float>, std::span<float>) override {
    return done();
  }
  // Rank 1 contributes the same values again.
  void allreduce_sum(std::span<double> data) override {
    for (double& v : data) v *= 2;
  }
  void broadcast(std::span<std::byte>, int) override {}
  // Rank 1 sends what we send, one bit flipped when it drifted.
  void allgather(std::span<const std::byte> mine, std::span<std::byte> all) override {
    std::memcpy(all.data(), mine.data(), mine.size());
    std::memcpy(all.data() + mine.size(), mine.data(), mine.size());
    if (drifted && !mine.empty()) all[mine.size()] ^= std::byte{1};
  }
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
  struct Done final : mf::PendingCollective {
    bool test() override { return true; }
    void wait() override {}
  };
  static std::unique_ptr<mf::PendingCollective> done() { return std::make_unique<Done>(); }
};

mf::ModelConfig tiny_dense() {
  mf::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 16;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.max_position_embeddings = 16;
  return c;
}

TEST(DataParallel, SharesMicroBatchesSumsLossesAndChecksReplicas) {
  mf::TrainableTransformer model(mf::init_random_weights(tiny_dense(), 1), [](const std::string&) { return false; });
  mf::CpuTrainableModel adapter(model);
  OtherRank comm;
  EXPECT_THROW(mf::DataParallel(comm, adapter, 1), mf::Error);  // rank 1 would have no micro-batch
  mf::DataParallel dp(comm, adapter, 5);
  EXPECT_TRUE(dp.distributed() && dp.is_root());
  for (size_t mi = 0; mi < 5; ++mi) EXPECT_EQ(dp.owns_micro_batch(mi), mi % 2 == 0) << mi;
  EXPECT_EQ(dp.last_micro_batch(), 4u);
  std::vector<mf::TrainingLoss> losses(2);
  losses[0] = {3.0, 10, 0.5, 0.25};
  dp.sum_losses(losses);
  EXPECT_EQ(losses[0].lm_sum, 6.0);
  EXPECT_EQ(losses[0].lm_tokens, 20);
  EXPECT_EQ(losses[1].lm_tokens, 0);

  mf::OptimizerSpec spec;
  spec.groups = {{"all", 1e-3f, 0.0f}};
  spec.group_of = [](const std::string&, const mf::Shape&) { return 0; };
  std::unique_ptr<mf::Optimizer> opt = adapter.make_optimizer(spec);
  EXPECT_NO_THROW(dp.check_replicas_agree(*opt));
  comm.drifted = true;
  try {
    dp.check_replicas_agree(*opt);
    ADD_FAILURE() << "a drifted replica went unnoticed";
  } catch (const mf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("weights of rank(s) 1 differ from rank 0's"), std::string::npos) << e.what();
  }
}

}  // namespace
