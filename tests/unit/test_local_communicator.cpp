// The job of one process (LocalCommunicator): every collective is the identity, including expert
// parallelism's all-to-alls and split, and send_floats from rank 0 to itself is a copy; counts
// that cannot match in a job of one are errors, not silent truncation.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "dist/communicator.h"

namespace {

TEST(LocalCommunicator, AllToAllsAreTheIdentity) {
  mf::LocalCommunicator comm;
  const std::vector<int64_t> counts = {3, 0, 7};
  std::vector<int64_t> received(3, -1);
  comm.alltoall(counts, received);
  EXPECT_EQ(received, counts);

  // Two rows of three values to itself.
  const std::vector<float> rows = {1, 2, 3, 4, 5, 6};
  std::vector<float> back(6, 0.0f);
  const std::vector<int64_t> two = {2};
  comm.alltoallv_rows(rows, two, back, two, 3);
  EXPECT_EQ(back, rows);
  // Rows that do not fit, or counts that differ, are refused.
  std::vector<float> small(3);
  EXPECT_THROW(comm.alltoallv_rows(rows, two, small, two, 3), mf::Error);
  const std::vector<int64_t> one = {1};
  EXPECT_THROW(comm.alltoallv_rows(rows, two, back, one, 3), mf::Error);

  std::vector<float> copy(6, 0.0f);
  mf::send_floats(comm, 0, rows, 0, copy);
  EXPECT_EQ(copy, rows);
}

TEST(LocalCommunicator, SplitGivesAnotherJobOfOne) {
  mf::LocalCommunicator comm;
  const std::unique_ptr<mf::Communicator> group = comm.split(5, 0);
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->rank(), 0);
  EXPECT_EQ(group->size(), 1);
  std::vector<int64_t> in = {4}, out(1);
  group->alltoall(in, out);
  EXPECT_EQ(out, in);
}

}  // namespace
