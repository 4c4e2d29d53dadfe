// The MPI communicator, run under mpirun (ctest: mpi.np4, mpi.np3): its collectives, errors
// that reach every rank, and every distributed scenario giving exactly what the in-process
// communicator gives for the same rank. Every test case is a collective: no REQUIRE after
// a collective (a rank that left a test case early would leave the others waiting).
#include <doctest/doctest.h>

#include <cstddef>
#include <gradcomp/comm/mpi.hpp>
#include <gradcomp/distributed.hpp>
#include <span>
#include <string>
#include <vector>

#include "../distributed_scenarios.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

/// Runs f and checks that it throws gc::error containing text (on this rank; every rank
/// runs the same check).
template <class F>
void expect_error(const std::string& text, F&& f) {
  bool threw = false;
  try {
    f();
  } catch (const gc::error& e) {
    threw = true;
    CHECK_MESSAGE(std::string(e.what()).find(text) != std::string::npos, e.what());
  }
  CHECK_MESSAGE(threw, "expected a gc::error containing: ", text);
}

}  // namespace

TEST_CASE("mpi communicator: the collectives move the right bytes") {
  gc::comm::mpi_communicator comm;
  const int me = comm.rank(), n = comm.size();
  CHECK(n >= 2);
  std::vector<std::byte> mine(static_cast<std::size_t>(me + 1), static_cast<std::byte>(me));
  gc::comm::gathered_bytes all;
  comm.allgatherv(mine, all);
  CHECK(all.ranks() == n);
  for (int r = 0; r < all.ranks(); ++r) {
    CHECK(all.from(r).size() == static_cast<std::size_t>(r + 1));
    for (std::byte b : all.from(r)) CHECK(b == static_cast<std::byte>(r));
  }
  comm.gatherv(mine, all, n - 1);
  CHECK(all.ranks() == (me == n - 1 ? n : 0));
  std::vector<std::byte> buffer(me == 1 ? 5 : 2, static_cast<std::byte>(me));
  comm.broadcast(buffer, 1);
  CHECK(buffer == std::vector<std::byte>(5, static_cast<std::byte>(1)));
  gc::comm::scattered_bytes send;
  std::vector<std::size_t> sizes(static_cast<std::size_t>(n));
  for (int j = 0; j < n; ++j) sizes[static_cast<std::size_t>(j)] = static_cast<std::size_t>(j + me);
  send.resize(sizes);
  std::fill(send.data.begin(), send.data.end(), static_cast<std::byte>(me));
  gc::comm::gathered_bytes received;
  comm.alltoallv(send, received);
  for (int r = 0; r < received.ranks(); ++r) {
    CHECK(received.from(r).size() == static_cast<std::size_t>(me + r));
    for (std::byte b : received.from(r)) CHECK(b == static_cast<std::byte>(r));
  }
  comm.barrier();
}

TEST_CASE("mpi communicator: mismatched collectives, roots and lengths fail on every rank") {
  gc::comm::mpi_communicator comm;
  expect_error("collectives do not match", [&] {
    std::vector<std::byte> buffer(1);
    gc::comm::gathered_bytes all;
    if (comm.rank() == 1)
      comm.broadcast(buffer, 0);
    else
      comm.allgatherv(buffer, all);
  });
  expect_error("collectives do not match", [&] {
    std::vector<std::byte> buffer(1);
    comm.broadcast(buffer, comm.rank());
  });
  expect_error("differs across ranks", [&] {
    std::vector<float> x(comm.rank() == 1 ? 7 : 8, 1.0f);
    gc::comm::allreduce_sum(comm, std::span<float>(x));
  });
  expect_error("the dimension differs across ranks", [&] { gc::ef_sgd s(gc::top_k{.k = 3}, comm, 100 + (comm.rank() == 2)); });
  comm.barrier();  // still usable after the errors
}

TEST_CASE("mpi: allreduce_sum gives the in-process result bit for bit") {
  gc::comm::mpi_communicator comm;
  const std::size_t d = 1001;
  std::vector<float> expected(d);
  for (int r = 0; r < comm.size(); ++r) {
    const auto g = gt::scenario_gradient(d, r, 3);
    for (std::size_t i = 0; i < d; ++i) expected[i] = r == 0 ? g[i] : expected[i] + g[i];
  }
  std::vector<float> x = gt::scenario_gradient(d, comm.rank(), 3);
  gc::comm::allreduce_sum(comm, std::span<float>(x));
  CHECK(gt::same_bits(x, expected));
}

TEST_CASE("mpi: every scenario matches the in-process run of the same rank, bit for bit") {
  gc::comm::mpi_communicator comm;
  for (const std::string& name : gt::scenario_names()) {
    CAPTURE(name);
    const gt::rank_result got = gt::run_scenario(name, comm);
    const auto reference = gt::run_scenario_locally(name, comm.size());
    const gt::rank_result& want = reference[static_cast<std::size_t>(comm.rank())];
    CHECK(gt::same_bits(got.x, want.x));
    CHECK(gt::same_bits(got.worker_error, want.worker_error));
    CHECK(gt::same_bits(got.server_error, want.server_error));
    CHECK(got.bytes == want.bytes);
    CHECK(got.per_step == want.per_step);
  }
}

TEST_CASE("mpi: a bad gradient on one rank fails the step on every rank and changes nothing") {
  gc::comm::mpi_communicator comm;
  constexpr std::size_t d = 300;
  for (const gc::server_mode mode : {gc::server_mode::single, gc::server_mode::sharded}) {
    gc::double_squeeze ds(gc::top_k{.k = 5}, comm, d, {.lr = 0.1, .server = {.mode = mode}});
    gc::ef_sgd ef(gc::hard_threshold{.lambda = 0.5}, comm, d, {.lr = 0.1});
    std::vector<float> x(d, 1.0f);
    const auto g = gt::scenario_gradient(d, comm.rank(), 0);
    ds.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
    const std::vector<float> x_before = x;
    const std::vector<float> e_before(ds.worker(0).error().begin(), ds.worker(0).error().end());
    const std::vector<float> bad(comm.rank() == 1 ? d + 2 : d, 0.25f);
    expect_error("rank 1 failed", [&] { ds.step(gc::exec::seq, std::span<float>(x), std::span<const float>(bad)); });
    expect_error("rank 1 failed", [&] { ef.step(gc::exec::seq, std::span<float>(x), std::span<const float>(bad)); });
    CHECK(x == x_before);
    CHECK(std::vector<float>(ds.worker(0).error().begin(), ds.worker(0).error().end()) == e_before);
    ds.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
    CHECK(ds.bytes().steps == 2);
  }
}
