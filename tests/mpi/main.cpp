// doctest's main for the MPI tests: every rank runs every test case (they are collectives),
// rank 0 prints the report, the others print failures only, and the exit code is nonzero
// if any rank failed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <mpi.h>

#include <cstdio>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int failed = 0;
  {
    doctest::Context context(argc, argv);
    if (rank != 0) context.setOption("minimal", true);
    failed = context.run() != 0 ? 1 : 0;
  }
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any_failed && !failed) std::fputs("gradcomp MPI tests: another rank failed (see its output)\n", stderr);
  MPI_Finalize();
  return any_failed;
}
