#pragma once
// Umbrella header for distributed training: the exchange contract (the communicator concept)
// and its typed collectives, the in-process communicator (comm::local), the bucket exchange
// (per-bucket compressed gradient averaging for the caller's own optimizer, as a DDP
// communication hook does), and the schemes over any compressor and communicator: EF-SGD,
// DoubleSqueeze, LIEC-SGD. The MPI communicator is <gradcomp/comm/mpi.hpp> (target
// gradcomp::mpi).
#include "gradcomp.hpp"

#include "aggregation.hpp"
#include "comm/collectives.hpp"
#include "comm/communicator.hpp"
#include "comm/local.hpp"

#include "algorithms/bucket_exchange.hpp"
#include "algorithms/double_squeeze.hpp"
#include "algorithms/ef_sgd.hpp"
#include "algorithms/liec_sgd.hpp"
#include "algorithms/powersgd_sgd.hpp"
#include "algorithms/server.hpp"
#include "algorithms/sgd.hpp"
#include "algorithms/summable.hpp"
#include "algorithms/traffic.hpp"
