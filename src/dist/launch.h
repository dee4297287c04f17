// Which communicator this process runs with: an MPI job when an MPI launcher (mpirun, mpiexec,
// srun) started it, else the job of one process, exactly as without any distribution (no MPI
// call is made then, not even MPI_Init).
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace mf {

// The world size an MPI launcher announced in this process's environment (Open MPI's
// OMPI_COMM_WORLD_SIZE, MPICH's PMI_SIZE, a PMIx launcher's PMIX_RANK), or 0 if none did.
int launcher_world_size();

// Whether this build has the MPI communicator (MOEFORGE_MPI).
bool built_with_mpi();

// The communicator for this process. Throws mf::Error when a launcher started several ranks
// but this build has no MPI (each rank would otherwise train alone and overwrite the others).
std::unique_ptr<Communicator> make_communicator();

}  // namespace mf
