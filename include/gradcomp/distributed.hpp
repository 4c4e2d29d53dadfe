#pragma once
// Umbrella header for distributed training: the communicator concept and its typed
// collectives, the in-process communicator (comm::local), and the schemes over any
// compressor and communicator: EF-SGD, DoubleSqueeze, LIEC-SGD. The MPI communicator is
// <gradcomp/comm/mpi.hpp> (target gradcomp::mpi).
#include "gradcomp.hpp"

#include "comm/collectives.hpp"
#include "comm/communicator.hpp"
#include "comm/local.hpp"

#include "algorithms/double_squeeze.hpp"
#include "algorithms/ef_sgd.hpp"
#include "algorithms/liec_sgd.hpp"
#include "algorithms/server.hpp"
#include "algorithms/traffic.hpp"
