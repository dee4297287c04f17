#include "dist/launch.h"

#include <cstdlib>
#include <string>

#include "core/error.h"
#ifdef MOEFORGE_HAVE_MPI
#include "dist/mpi_communicator.h"
#endif

namespace mf {

namespace {

// A positive integer from the environment, or 0.
int env_count(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (*end == '\0' && n > 0 && n < (1L << 30)) ? int(n) : 0;
}

}  // namespace

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const int n = env_count(name)) return n;
  // A PMIx launcher (srun --mpi=pmix, prterun) always sets the rank; the size may come only
  // through PMIx itself. Then the job is taken to be distributed.
  return std::getenv("PMIX_RANK") ? 2 : 0;
}

bool built_with_mpi() {
#ifdef MOEFORGE_HAVE_MPI
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_communicator() {
  const int launched = launcher_world_size();
  if (launched == 0) return std::make_unique<LocalCommunicator>();
#ifdef MOEFORGE_HAVE_MPI
  return make_mpi_communicator();
#else
  MF_CHECK(launched == 1, "an MPI launcher started this process as one of ", launched,
           " ranks, but this moeforge was built without MPI, so distributed training is not available; "
           "install MPI (Debian: apt-get install libopenmpi-dev openmpi-bin) and rebuild (CMake finds it and "
           "sets MOEFORGE_MPI=ON), or run without mpirun");
  return std::make_unique<LocalCommunicator>();
#endif
}

}  // namespace mf
