#include "dist/communicator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include "core/checked.h"
#include "core/error.h"

namespace mf {

namespace {

// One process's sum is its own value: nothing to wait for.
class CompletedCollective final : public PendingCollective {
 public:
  bool test() override { return true; }
  void wait() override {}
};

}  // namespace

std::unique_ptr<PendingCollective> LocalCommunicator::start_allreduce_sum(std::span<float>) {
  return std::make_unique<CompletedCollective>();
}

std::unique_ptr<PendingCollective> LocalCommunicator::start_reduce_scatter_sum(std::span<const float> in,
                                                                                std::span<float> out) {
  MF_CHECK(in.size() == out.size(), "reduce-scatter: ", in.size(), " values in, ", out.size(), " out, in a job of one");
  std::copy(in.begin(), in.end(), out.begin());
  return std::make_unique<CompletedCollective>();
}

void LocalCommunicator::broadcast(std::span<std::byte>, int root) {
  MF_CHECK(root == 0, "broadcast: root ", root, " in a job of one process");
}

void LocalCommunicator::allgather(std::span<const std::byte> mine, std::span<std::byte> all) {
  MF_CHECK(all.size() == mine.size(), "allgather: ", all.size(), " bytes of room for ", mine.size());
  if (!mine.empty()) std::memcpy(all.data(), mine.data(), mine.size());
}

void LocalCommunicator::gather(std::span<const std::byte> mine, std::span<std::byte> all, int root) {
  MF_CHECK(root == 0, "gather: root ", root, " in a job of one process");
  allgather(mine, all);
}

void LocalCommunicator::alltoall(std::span<const int64_t> send, std::span<int64_t> recv) {
  MF_CHECK(recv.size() == send.size(), "alltoall: ", send.size(), " values out, ", recv.size(), " in, in a job of one");
  std::copy(send.begin(), send.end(), recv.begin());
}

void LocalCommunicator::alltoallv_rows(std::span<const float> send, std::span<const int64_t> send_rows,
                                       std::span<float> recv, std::span<const int64_t> recv_rows, int64_t width) {
  MF_CHECK(send_rows.size() == 1 && recv_rows.size() == 1 && send_rows[0] == recv_rows[0] && width >= 0,
           "alltoallv: row counts that do not match in a job of one");
  const size_t n = checked_mul(size_t(send_rows[0]), size_t(width), "alltoallv rows");
  MF_CHECK(send.size() >= n && recv.size() >= n, "alltoallv: ", n, " values do not fit the buffers");
  std::copy_n(send.begin(), n, recv.begin());
}

std::unique_ptr<Communicator> LocalCommunicator::split(int, int) { return std::make_unique<LocalCommunicator>(); }

void LocalCommunicator::abort(int code) { std::exit(code); }

std::string LocalCommunicator::host() const {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

void broadcast_floats(Communicator& comm, std::span<float> data, int root) {
  comm.broadcast(std::as_writable_bytes(data), root);
}

void broadcast_int64(Communicator& comm, int64_t& value, int root) {
  comm.broadcast(std::as_writable_bytes(std::span<int64_t>(&value, 1)), root);
}

void broadcast_string(Communicator& comm, std::string& text, int root) {
  int64_t n = int64_t(text.size());
  broadcast_int64(comm, n, root);
  text.resize(size_t(n));
  comm.broadcast(std::as_writable_bytes(std::span<char>(text.data(), text.size())), root);
}

void send_floats(Communicator& comm, int from, std::span<const float> data, int to, std::span<float> into) {
  const size_t ranks = size_t(comm.size()), me = size_t(comm.rank());
  std::vector<int64_t> send_rows(ranks, 0), recv_rows(ranks, 0);
  if (me == size_t(from)) send_rows[size_t(to)] = int64_t(data.size());
  if (me == size_t(to)) recv_rows[size_t(from)] = int64_t(into.size());
  comm.alltoallv_rows(data, send_rows, into, recv_rows, 1);
}

std::vector<uint64_t> allgather_u64(Communicator& comm, uint64_t mine) {
  std::vector<uint64_t> all(size_t(comm.size()));
  comm.allgather(std::as_bytes(std::span<const uint64_t>(&mine, 1)), std::as_writable_bytes(std::span<uint64_t>(all)));
  return all;
}

std::vector<std::string> allgather_strings(Communicator& comm, const std::string& mine) {
  const std::vector<uint64_t> sizes = allgather_u64(comm, mine.size());
  uint64_t longest = 0;
  for (uint64_t n : sizes) longest = std::max(longest, n);
  std::string padded = mine;
  padded.resize(size_t(longest));
  std::string all(size_t(longest) * sizes.size(), '\0');
  comm.allgather(std::as_bytes(std::span<const char>(padded)), std::as_writable_bytes(std::span<char>(all)));
  std::vector<std::string> out;
  for (size_t r = 0; r < sizes.size(); ++r) out.push_back(all.substr(r * size_t(longest), size_t(sizes[r])));
  return out;
}

}  // namespace mf
