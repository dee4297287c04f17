#include "dist/mpi_communicator.h"

// The C API only: Open MPI's and MPICH's mpi.h would otherwise pull in the deprecated C++
// bindings when compiled as C++, which live in a library (libmpi_cxx) we do not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <vector>

#include "core/checked.h"
#include "core/error.h"

namespace mf {

namespace {

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, size_t(std::max(len, 0)));
}

// Every MPI call goes through here: the communicator returns errors (MPI_ERRORS_RETURN) so that
// a failure is an mf::Error naming the operation rather than MPI's default abort without context.
void check_mpi(int code, const char* what) {
  MF_CHECK(code == MPI_SUCCESS, "MPI ", what, " failed: ", mpi_error_text(code));
}

// MPI counts are int: larger buffers go in pieces of at most this many elements.
constexpr size_t kMaxCount = size_t(1) << 30;

class MpiPending final : public PendingCollective {
 public:
  explicit MpiPending(MPI_Request request) : request_(request) {}
  // A request still running when its owner goes away (an exception between start and wait):
  // it is left to MPI rather than waited for, since the other ranks may never complete it; the
  // job is ending then (the failing rank aborts it).
  ~MpiPending() override = default;
  bool test() override {
    if (request_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    check_mpi(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "nonblocking collective (test)");
    return done != 0;
  }
  void wait() override {
    if (request_ == MPI_REQUEST_NULL) return;
    check_mpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), "nonblocking collective (wait)");
  }

 private:
  MPI_Request request_;
};

// The collectives over one MPI communicator: the job's (MpiCommunicator, which also starts and
// ends MPI) or a group split from it (expert parallelism), which frees only its communicator.
class MpiGroup : public Communicator {
 public:
  MpiGroup(const MpiGroup&) = delete;
  MpiGroup& operator=(const MpiGroup&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  std::string describe() const override {
    char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int len = 0;
    MPI_Get_library_version(text, &len);
    std::string v(text, size_t(std::max(len, 0)));
    // "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"
    const size_t cut = v.find_first_of(",\n");
    return "MPI (" + (cut == std::string::npos ? v : v.substr(0, cut)) + ")";
  }

  std::string host() const override {
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int len = 0;
    MPI_Get_processor_name(name, &len);
    return std::string(name, size_t(std::max(len, 0)));
  }

  std::unique_ptr<PendingCollective> start_allreduce_sum(std::span<float> data) override {
    MF_CHECK(data.size() <= size_t(INT_MAX), "all-reduce of ", data.size(), " values: more than MPI counts hold");
    MPI_Request request = MPI_REQUEST_NULL;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data.data(), int(data.size()), MPI_FLOAT, MPI_SUM, comm_, &request),
              "all-reduce (start)");
    return std::make_unique<MpiPending>(request);
  }

  std::unique_ptr<PendingCollective> start_reduce_scatter_sum(std::span<const float> in,
                                                              std::span<float> out) override {
    MF_CHECK(in.size() == out.size() * size_t(size_), "reduce-scatter: ", in.size(), " values in for ", size_,
             " blocks of ", out.size());
    MF_CHECK(out.size() <= size_t(INT_MAX), "reduce-scatter of blocks of ", out.size(), " values: more than MPI counts hold");
    MPI_Request request = MPI_REQUEST_NULL;
    check_mpi(MPI_Ireduce_scatter_block(in.data(), out.data(), int(out.size()), MPI_FLOAT, MPI_SUM, comm_, &request),
              "reduce-scatter (start)");
    return std::make_unique<MpiPending>(request);
  }

  void allreduce_sum(std::span<double> data) override {
    for (size_t at = 0; at < data.size(); at += kMaxCount) {
      const int n = int(std::min(kMaxCount, data.size() - at));
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, data.data() + at, n, MPI_DOUBLE, MPI_SUM, comm_), "all-reduce");
    }
  }

  void broadcast(std::span<std::byte> data, int root) override {
    MF_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " in a job of ", size_, " ranks");
    for (size_t at = 0; at < data.size(); at += kMaxCount) {
      const int n = int(std::min(kMaxCount, data.size() - at));
      check_mpi(MPI_Bcast(data.data() + at, n, MPI_BYTE, root, comm_), "broadcast");
    }
  }

  void allgather(std::span<const std::byte> mine, std::span<std::byte> all) override {
    MF_CHECK(all.size() == mine.size() * size_t(size_), "allgather: ", all.size(), " bytes of room for ", size_,
             " x ", mine.size());
    MF_CHECK(mine.size() <= kMaxCount, "allgather of ", mine.size(), " bytes per rank: more than MPI counts hold");
    check_mpi(MPI_Allgather(mine.data(), int(mine.size()), MPI_BYTE, all.data(), int(mine.size()), MPI_BYTE, comm_),
              "allgather");
  }

  void gather(std::span<const std::byte> mine, std::span<std::byte> all, int root) override {
    MF_CHECK(root >= 0 && root < size_, "gather: root ", root, " in a job of ", size_, " ranks");
    MF_CHECK(rank_ != root || all.size() == mine.size() * size_t(size_), "gather: ", all.size(), " bytes of room for ",
             size_, " x ", mine.size());
    MF_CHECK(mine.size() <= kMaxCount, "gather of ", mine.size(), " bytes per rank: more than MPI counts hold");
    check_mpi(MPI_Gather(mine.data(), int(mine.size()), MPI_BYTE, rank_ == root ? all.data() : nullptr,
                         int(mine.size()), MPI_BYTE, root, comm_),
              "gather");
  }

  void alltoall(std::span<const int64_t> send, std::span<int64_t> recv) override {
    MF_CHECK(send.size() == recv.size() && send.size() % size_t(size_) == 0, "alltoall: ", send.size(),
             " values out and ", recv.size(), " in over ", size_, " ranks");
    const size_t block = send.size() / size_t(size_);
    MF_CHECK(block <= size_t(INT_MAX), "alltoall of ", block, " values per rank: more than MPI counts hold");
    check_mpi(MPI_Alltoall(send.data(), int(block), MPI_INT64_T, recv.data(), int(block), MPI_INT64_T, comm_),
              "alltoall");
  }

  void alltoallv_rows(std::span<const float> send, std::span<const int64_t> send_rows, std::span<float> recv,
                      std::span<const int64_t> recv_rows, int64_t width) override {
    const size_t ranks = size_t(size_);
    MF_CHECK(send_rows.size() == ranks && recv_rows.size() == ranks && width >= 1, "alltoallv: ", send_rows.size(),
             " and ", recv_rows.size(), " row counts for ", ranks, " ranks");
    // Counts and displacements in rows of one derived type (width floats), so that MPI's int
    // counts bound rows, not values.
    std::vector<int> scount(ranks), sdispl(ranks), rcount(ranks), rdispl(ranks);
    auto lay_out = [&](std::span<const int64_t> rows, std::vector<int>& count, std::vector<int>& displ,
                       size_t room) {
      uint64_t at = 0;
      for (size_t r = 0; r < ranks; ++r) {
        MF_CHECK(rows[r] >= 0 && at <= uint64_t(INT_MAX) && uint64_t(rows[r]) <= uint64_t(INT_MAX) - at,
                 "alltoallv: ", rows[r], " rows at row ", at, ": more than MPI counts hold");
        count[r] = int(rows[r]);
        displ[r] = int(at);
        at += uint64_t(rows[r]);
      }
      MF_CHECK(checked_mul(at, uint64_t(width), "alltoallv values") <= room, "alltoallv: ", at, " rows of ", width,
               " values do not fit a buffer of ", room);
    };
    lay_out(send_rows, scount, sdispl, send.size());
    lay_out(recv_rows, rcount, rdispl, recv.size());
    MF_CHECK(width <= int64_t(INT_MAX), "alltoallv: rows of ", width, " values: more than MPI counts hold");
    MPI_Datatype row = MPI_DATATYPE_NULL;
    check_mpi(MPI_Type_contiguous(int(width), MPI_FLOAT, &row), "type_contiguous");
    check_mpi(MPI_Type_commit(&row), "type_commit");
    const int rc = MPI_Alltoallv(send.data(), scount.data(), sdispl.data(), row, recv.data(), rcount.data(),
                                 rdispl.data(), row, comm_);
    MPI_Type_free(&row);
    check_mpi(rc, "alltoallv");
  }

  std::unique_ptr<Communicator> split(int color, int key) override;

  void barrier() override { check_mpi(MPI_Barrier(comm_), "barrier"); }

  void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this is for the compiler and a broken MPI
  }

 protected:
  MpiGroup() = default;
  // Takes `comm` (already set to return errors).
  void adopt(MPI_Comm comm) {
    comm_ = comm;
    check_mpi(MPI_Comm_rank(comm_, &rank_), "comm_rank");
    check_mpi(MPI_Comm_size(comm_, &size_), "comm_size");
  }
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

// A group split from the job: frees its communicator, leaves MPI running.
class MpiSubGroup final : public MpiGroup {
 public:
  explicit MpiSubGroup(MPI_Comm comm) { adopt(comm); }
  ~MpiSubGroup() override { MPI_Comm_free(&comm_); }
};

std::unique_ptr<Communicator> MpiGroup::split(int color, int key) {
  MPI_Comm part = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(comm_, color, key, &part), "comm_split");
  MPI_Comm_set_errhandler(part, MPI_ERRORS_RETURN);
  return std::make_unique<MpiSubGroup>(part);
}

// The job: starts MPI on construction and ends it on destruction.
class MpiCommunicator final : public MpiGroup {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    MF_CHECK(!initialized, "MPI was already started in this process");
    // Only the main thread calls MPI (the work pool's threads compute between the calls): FUNNELED.
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm dup = MPI_COMM_NULL;
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &dup), "comm_dup");
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    adopt(dup);
  }
  ~MpiCommunicator() override {
    MPI_Comm_free(&comm_);
    MPI_Finalize();
  }
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace mf
