#include <gradcomp/distributed.hpp>
#include <gradcomp/gradcomp.hpp>
#ifdef CONSUMER_HAS_MPI
#include <gradcomp/comm/mpi.hpp>
static_assert(gradcomp::comm::communicator<gradcomp::comm::mpi_communicator>);
#endif
#ifdef CONSUMER_HAS_PAR
#include <gradcomp/cpu.hpp>
#endif
#include <cstdio>
#include <span>
#include <vector>
namespace gc = gradcomp;
int main() {
  std::vector<float> g{0.5f, -2.0f, 0.25f, 3.0f, -0.125f};
  gc::sparse_vector<float> msg;
  gc::compress(gc::exec::seq, gc::top_k{.k = 2}, std::span<const float>(g), msg);
  gc::error_feedback ef{gc::hard_threshold{.lambda = 1.0f}, g.size()};
  const auto& m = ef.compress(gc::exec::seq, std::span<const float>(g), 1.0f);
  bool ok = msg.indices.size() == 2 && m.indices.size() == 2;
  const char* backend = "seq";
#ifdef CONSUMER_HAS_PAR
  gc::sparse_vector<float> par_msg;
  gc::compress(gc::exec::par, gc::top_k{.k = 2}, std::span<const float>(g), par_msg);
  ok = ok && par_msg == msg;
  backend = gc::cpu::simd_target();
#endif
  // Two in-process ranks run one EF-SGD step; both replicas take the same update.
  std::vector<std::vector<float>> x(2, std::vector<float>(g.size(), 1.0f));
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    gc::ef_sgd scheme(gc::top_k{.k = 1}, comm, g.size(), {.lr = 0.5});
    scheme.step(gc::exec::seq, std::span<float>(x[static_cast<std::size_t>(comm.rank())]), std::span<const float>(g));
  });
  ok = ok && x[0] == x[1] && x[0][3] == -0.5f;
#ifdef CONSUMER_HAS_MPI
  const char* mpi = "yes";
#else
  const char* mpi = "no";
#endif
  std::printf("gradcomp %d.%d.%d: top_k kept %zu, hard_threshold kept %zu, exec::par: %s, ef_sgd on 2 ranks: %s, mpi: %s\n",
              GRADCOMP_VERSION_MAJOR, GRADCOMP_VERSION_MINOR, GRADCOMP_VERSION_PATCH, msg.indices.size(),
              m.indices.size(), backend, ok ? "ok" : "wrong", mpi);
  return ok ? 0 : 1;
}
