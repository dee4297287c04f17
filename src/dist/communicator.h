// The collective operations distributed training needs, behind one small interface: a job of
// size() ranks, this process being rank(). MpiCommunicator (src/dist/mpi_communicator.*) runs them
// over MPI across processes and hosts; LocalCommunicator is the job of one process, where every
// collective is the identity and nothing is sent. A NCCL communicator for GPUs would implement the
// same calls on device buffers.
//
// Every collective must be called by every rank in the same order (MPI's rule); a rank that
// stops calling them leaves the others waiting, which is why a failing rank calls abort().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace mf {

// A collective started without waiting (gradient buckets sent while backward still runs).
// The buffer it was started on must stay alive and untouched until wait() returns.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  // Lets the transport move data forward without blocking; true once the operation is complete.
  virtual bool test() = 0;
  // Blocks until the operation is complete. Throws mf::Error naming the operation on failure.
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // One line for the layout print: the transport and its version.
  virtual std::string describe() const = 0;
  // The host this rank runs on (the layout print says where each rank is).
  virtual std::string host() const = 0;

  // Sums `data` element-wise over all ranks, in place, without waiting.
  virtual std::unique_ptr<PendingCollective> start_allreduce_sum(std::span<float> data) = 0;
  // Sums `in` (size() * out.size() values, the same layout on every rank) element-wise over all
  // ranks and leaves block rank() of the sum in `out`, without waiting (ZeRO-1's gradients).
  virtual std::unique_ptr<PendingCollective> start_reduce_scatter_sum(std::span<const float> in,
                                                                      std::span<float> out) = 0;
  // Sums `data` element-wise over all ranks, in place (scalars: losses, counts, statistics).
  virtual void allreduce_sum(std::span<double> data) = 0;
  // Rank `root`'s bytes into every rank's `data` (the same size on every rank).
  virtual void broadcast(std::span<std::byte> data, int root) = 0;
  // Every rank's `mine` (the same size on every rank), concatenated in rank order into `all`
  // (size() * mine.size() bytes).
  virtual void allgather(std::span<const std::byte> mine, std::span<std::byte> all) = 0;
  // The same concatenation on rank `root` only (`all` is not touched elsewhere and may be empty).
  virtual void gather(std::span<const std::byte> mine, std::span<std::byte> all, int root) = 0;
  // Block r of `send` (send.size() / size() values) to rank r; block s of `recv` (the same size)
  // from rank s (MPI_Alltoall: expert parallelism's row counts, sent before the rows).
  virtual void alltoall(std::span<const int64_t> send, std::span<int64_t> recv) = 0;
  // Rows of `width` floats: send_rows[r] rows to rank r, taken from `send` in rank order;
  // recv_rows[s] rows from rank s, written to `recv` in rank order (MPI_Alltoallv: the rows of
  // an expert-parallel MoE layer going to the ranks that hold their experts, and back).
  virtual void alltoallv_rows(std::span<const float> send, std::span<const int64_t> send_rows, std::span<float> recv,
                              std::span<const int64_t> recv_rows, int64_t width) = 0;
  // The ranks that give the same `color` as a job of their own, ranked by `key` (MPI_Comm_split):
  // expert parallelism's groups. Collective over this communicator; the result must be
  // destroyed before this one.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job at once with `code` (a rank that cannot go on: the others would
  // wait for it forever in their next collective).
  [[noreturn]] virtual void abort(int code) = 0;
};

// The job of one process: rank 0 of 1, every collective the identity.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "one process"; }
  std::string host() const override;
  std::unique_ptr<PendingCollective> start_allreduce_sum(std::span<float> data) override;
  std::unique_ptr<PendingCollective> start_reduce_scatter_sum(std::span<const float> in,
                                                              std::span<float> out) override;
  void allreduce_sum(std::span<double>) override {}
  void broadcast(std::span<std::byte>, int root) override;
  void allgather(std::span<const std::byte> mine, std::span<std::byte> all) override;
  void gather(std::span<const std::byte> mine, std::span<std::byte> all, int root) override;
  void alltoall(std::span<const int64_t> send, std::span<int64_t> recv) override;
  void alltoallv_rows(std::span<const float> send, std::span<const int64_t> send_rows, std::span<float> recv,
                      std::span<const int64_t> recv_rows, int64_t width) override;
  std::unique_ptr<Communicator> split(int color, int key) override;
  void barrier() override {}
  [[noreturn]] void abort(int code) override;
};

// Typed helpers over the byte collectives.
void broadcast_floats(Communicator& comm, std::span<float> data, int root);
void broadcast_string(Communicator& comm, std::string& text, int root);
void broadcast_int64(Communicator& comm, int64_t& value, int root);
// `data` (on rank `from`) into `into` (on rank `to`, the same size); a collective of every rank
// of `comm`, which send nothing else (rank 0 gathering an expert from the rank that holds it).
void send_floats(Communicator& comm, int from, std::span<const float> data, int to, std::span<float> into);
// Every rank's value, in rank order.
std::vector<uint64_t> allgather_u64(Communicator& comm, uint64_t mine);
// Every rank's text, in rank order (any lengths).
std::vector<std::string> allgather_strings(Communicator& comm, const std::string& mine);

}  // namespace mf
