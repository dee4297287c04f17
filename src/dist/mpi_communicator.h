// The communicator over MPI (built when CMake finds MPI: MOEFORGE_MPI). Constructing it starts
// MPI for this process (MPI_Init_thread) and works on a duplicate of MPI_COMM_WORLD; destroying
// it ends MPI (MPI_Finalize). A process can do that once, so there is one per process, owned by
// whoever runs the job (`moeforge train`). The type is opaque so that only its .cpp sees mpi.h.
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace mf {

// Throws mf::Error if MPI cannot start or was started before in this process.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace mf
