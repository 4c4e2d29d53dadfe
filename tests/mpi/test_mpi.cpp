// The MPI communicator, run under mpirun (ctest: mpi.np4, mpi.np3): its collectives, errors
// that reach every rank, and every distributed scenario giving exactly what the in-process
// communicator gives for the same rank. Every test case is a collective: no REQUIRE after
// a collective (a rank that left a test case early would leave the others waiting).
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <gradcomp/comm/mpi.hpp>
#include <gradcomp/distributed.hpp>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
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

TEST_CASE("mpi communicator: several operations in flight, waited in any order, give the rank-order sum") {
  gc::comm::mpi_communicator comm;
  static_assert(gc::comm::communicator<gc::comm::mpi_communicator>);
  const int me = comm.rank(), n = comm.size();
  std::vector<std::byte> mine(static_cast<std::size_t>(me + 1), static_cast<std::byte>(me));
  std::vector<std::size_t> seen;
  std::vector<std::byte> all(64, std::byte{0xee});
  auto gather = comm.start_allgatherv(mine, [&](std::span<const std::size_t> sizes) {
    seen.assign(sizes.begin(), sizes.end());
    return std::span<std::byte>(all);
  });
  const std::size_t d = 1001;
  std::vector<float> f = gt::scenario_gradient(d, me, 5), f_expected(d);
  std::vector<double> x(d), x_expected(d);
  for (std::size_t i = 0; i < d; ++i) x[i] = 1e16 * (me % 2 ? -1.0 : 1.0) + static_cast<double>(me + i);
  for (int r = 0; r < n; ++r) {
    const auto g = gt::scenario_gradient(d, r, 5);
    for (std::size_t i = 0; i < d; ++i) {
      f_expected[i] = r == 0 ? g[i] : f_expected[i] + g[i];
      const double v = 1e16 * (r % 2 ? -1.0 : 1.0) + static_cast<double>(r + i);
      x_expected[i] = r == 0 ? v : x_expected[i] + v;
    }
  }
  auto sum_f = comm.start_allreduce_sum(std::span<float>(f));
  auto sum_x = comm.start_allreduce_sum(std::span<double>(x));
  // alltoallv: rank r sends j + r bytes of value r to rank j.
  std::vector<std::size_t> counts(static_cast<std::size_t>(n));
  std::vector<std::byte> blocks;
  for (int j = 0; j < n; ++j) {
    counts[static_cast<std::size_t>(j)] = static_cast<std::size_t>(j + me);
    blocks.insert(blocks.end(), static_cast<std::size_t>(j + me), static_cast<std::byte>(me));
  }
  gc::comm::gathered_bytes received;
  auto scatter = comm.start_alltoallv(blocks, counts, received.receive());
  auto barrier = comm.start_barrier();
  // Complete in reverse order, the barrier by polling.
  while (!barrier.test()) {
  }
  scatter.wait();
  for (int r = 0; r < n; ++r) {
    CHECK(received.from(r).size() == static_cast<std::size_t>(me + r));
    for (const std::byte b : received.from(r)) CHECK(b == static_cast<std::byte>(r));
  }
  sum_x.wait();
  sum_f.wait();
  CHECK(gt::same_bits(f, f_expected));
  CHECK(x == x_expected);
  gather.wait();
  CHECK(seen.size() == static_cast<std::size_t>(n));
  std::size_t at = 0;
  for (int r = 0; r < n; ++r)
    for (int j = 0; j <= r; ++j) CHECK(all[at++] == static_cast<std::byte>(r));
  CHECK(all[at] == std::byte{0xee});
}

TEST_CASE("mpi communicator: a mismatched operation in flight fails on every rank, the others complete") {
  gc::comm::mpi_communicator comm;
  std::vector<float> f(4, 1.0f);
  std::vector<double> d(4, 1.0);
  std::vector<float> shorter(comm.rank() == 2 ? 3 : 4, 2.0f), ok(2, 1.0f);
  auto first = comm.rank() == 1 ? comm.start_allreduce_sum(std::span<double>(d))
                                : comm.start_allreduce_sum(std::span<float>(f));
  auto second = comm.start_allreduce_sum(std::span<float>(shorter));
  auto third = comm.start_allreduce_sum(std::span<float>(ok));
  third.wait();  // waited first: the earlier (failing) ones are driven along
  CHECK(ok == std::vector<float>(2, static_cast<float>(comm.size())));
  expect_error("collectives do not match: rank 0 called allreduce_sum<float> (root 0) but rank 1 called "
               "allreduce_sum<double>",
               [&] { first.wait(); });
  expect_error("the vector length differs across ranks: rank 0 has 4, rank 2 has 3", [&] { second.wait(); });
  expect_error("rank 1's send block counts do not add up", [&] {
    const std::vector<std::byte> blocks(static_cast<std::size_t>(comm.size()));
    std::vector<std::size_t> counts(static_cast<std::size_t>(comm.size()), 1);
    if (comm.rank() == 1) counts[0] = 2;
    gc::comm::gathered_bytes received;
    comm.start_alltoallv(blocks, counts, received.receive()).wait();
  });
  expect_error("broadcast: root 9 is not a rank", [&] {
    std::vector<std::byte> buffer(2);
    gc::comm::broadcast(comm, buffer, 9);
  });
  // A receiver that gives too little fails its rank only; the operation completes elsewhere.
  const std::vector<std::byte> mine(3, std::byte{5});
  std::vector<std::byte> small(2), enough(3 * static_cast<std::size_t>(comm.size()));
  auto r = comm.start_allgatherv(mine, [&](std::span<const std::size_t>) {
    return comm.rank() == 0 ? std::span<std::byte>(small) : std::span<std::byte>(enough);
  });
  if (comm.rank() == 0)
    expect_error("the receiver gave 2 bytes", [&] { r.wait(); });
  else
    CHECK_NOTHROW(r.wait());
  { auto dropped = comm.start_barrier(); }  // a request dropped unwaited completes on its own
  comm.barrier();
}

TEST_CASE("mpi: the bucket exchange skips a bucket everywhere, and mismatched buckets fail everywhere") {
  gc::comm::mpi_communicator comm;
  const int me = comm.rank();
  gc::bucket_exchange ex(gc::top_k{.k = 3}, comm, {20, 9});
  std::vector<float> g0 = gt::scenario_gradient(20, me, 0), g1 = gt::scenario_gradient(9, me, 0), u0(20), u1(9);
  ex.start(gc::exec::seq, 1, std::span<const float>(g1));
  ex.start(gc::exec::seq, 0, std::span<const float>(g0));
  CHECK(ex.finish(gc::exec::seq, 0, std::span<float>(u0)) == gc::step_status::applied);
  CHECK(ex.finish(gc::exec::seq, 1, std::span<float>(u1)) == gc::step_status::applied);
  const std::vector<float> e0(ex.feedback(0).error().begin(), ex.feedback(0).error().end());
  if (me == comm.size() - 1) g0[4] = std::numeric_limits<float>::quiet_NaN();
  ex.start(gc::exec::seq, 0, std::span<const float>(g0));
  ex.start(gc::exec::seq, 1, std::span<const float>(g1));
  CHECK(ex.finish(gc::exec::seq, 1, std::span<float>(u1)) == gc::step_status::applied);
  CHECK(ex.finish(gc::exec::seq, 0, std::span<float>(u0)) == gc::step_status::skipped);
  CHECK(std::vector<float>(ex.feedback(0).error().begin(), ex.feedback(0).error().end()) == e0);
  CHECK(ex.feedback(0).metrics().steps == 1);
  CHECK(ex.feedback(1).metrics().steps == 2);
  // Rank 1 starts the buckets in the other order: every rank fails, in both buckets.
  g0 = gt::scenario_gradient(20, me, 1);
  gc::bucket_exchange same(gc::top_k{.k = 3}, comm, {20, 20});
  std::vector<float> h = gt::scenario_gradient(20, me, 2), v(20);
  same.start(gc::exec::seq, me == 1 ? 1 : 0, std::span<const float>(g0));
  same.start(gc::exec::seq, me == 1 ? 0 : 1, std::span<const float>(h));
  expect_error("the ranks exchanged different buckets", [&] { same.finish(gc::exec::seq, 0, std::span<float>(v)); });
  expect_error("the ranks exchanged different buckets", [&] { same.finish(gc::exec::seq, 1, std::span<float>(v)); });
  CHECK(same.feedback(0).metrics().steps == 0);
  CHECK(same.feedback(1).metrics().steps == 0);
  comm.barrier();
}

namespace {

/// Eight buckets of two classes in flight at once, started and finished in orders that change
/// every step (the same on every rank); returns every update and the final residuals.
template <class Comm>
std::vector<float> bucket_orders(Comm& comm) {
  const std::vector<std::size_t> dims{50, 3, 200, 1, 77, 64, 10, 129};
  gc::bucket_exchange gathered(gc::hard_threshold{.lambda = 0.8}, comm, dims);
  gc::bucket_exchange summed(gc::random_k{.k = 5, .seed = 3}, comm, dims);
  std::vector<float> out;
  std::vector<std::vector<float>> g(dims.size()), h(dims.size());
  std::vector<float> u;
  for (int t = 0; t < 5; ++t) {
    std::vector<std::size_t> order(dims.size());
    for (std::size_t b = 0; b < order.size(); ++b) order[b] = (b * 3 + static_cast<std::size_t>(t)) % order.size();
    for (const std::size_t b : order) {
      g[b] = gt::scenario_gradient(dims[b], comm.rank(), t * 20 + static_cast<int>(b));
      h[b] = gt::scenario_gradient(dims[b], comm.rank(), t * 20 + static_cast<int>(b) + 10);
      gathered.start(gc::exec::seq, b, std::span<const float>(g[b]));
      summed.start(gc::exec::seq, b, std::span<const float>(h[b]), 2.0);
    }
    for (std::size_t j = order.size(); j-- > 0;) {
      const std::size_t b = order[(j * 5) % order.size()];
      u.resize(dims[b]);
      gathered.finish(gc::exec::seq, b, std::span<float>(u));
      out.insert(out.end(), u.begin(), u.end());
      summed.finish(gc::exec::seq, b, std::span<float>(u));
      out.insert(out.end(), u.begin(), u.end());
    }
  }
  for (std::size_t b = 0; b < dims.size(); ++b) {
    out.insert(out.end(), gathered.feedback(b).error().begin(), gathered.feedback(b).error().end());
    out.insert(out.end(), summed.feedback(b).error().begin(), summed.feedback(b).error().end());
  }
  return out;
}

}  // namespace

TEST_CASE("mpi: sixteen exchanges in flight, completed in changing orders, match the in-process run") {
  gc::comm::mpi_communicator comm;
  const std::vector<float> got = bucket_orders(comm);
  std::vector<std::vector<float>> want(static_cast<std::size_t>(comm.size()));
  gc::comm::local_group::run(comm.size(), [&](gc::comm::local_communicator& local) {
    want[static_cast<std::size_t>(local.rank())] = bucket_orders(local);
  });
  CHECK(gt::same_bits(got, want[static_cast<std::size_t>(comm.rank())]));
}

TEST_CASE("mpi: powersgd_sgd matches the in-process run bit for bit, and a bad gradient fails everywhere") {
  gc::comm::mpi_communicator comm;
  const std::vector<gc::tensor_shape> shapes{{24, 20}, {1, 20}, {16, 12}};
  const gc::powersgd_sgd_options opt{.lr = 0.1, .rank = 2, .seed = 5};
  const auto gradient = [](std::size_t d, int rank, int t) {
    std::vector<float> g(d);
    for (std::size_t i = 0; i < d; ++i)
      g[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i) + 1.3 * rank + 0.7 * t));
    return g;
  };
  const auto run = [&](auto& c, std::vector<float>& x) {
    using Comm = std::remove_cvref_t<decltype(c)>;
    gc::powersgd_sgd<Comm> scheme(c, shapes, opt);
    x.assign(scheme.dim(), 1.0f);
    for (int t = 0; t < 3; ++t) {
      const auto g = gradient(scheme.dim(), c.rank(), t);
      scheme.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
    }
    return scheme.bytes().total;
  };
  std::vector<float> x;
  const gc::traffic bytes = run(comm, x);
  std::vector<std::vector<float>> local(static_cast<std::size_t>(comm.size()));
  gc::comm::local_group::run(comm.size(), [&](gc::comm::local_communicator& c) {
    run(c, local[static_cast<std::size_t>(c.rank())]);
  });
  CHECK(gt::same_bits(x, local[static_cast<std::size_t>(comm.rank())]));
  CHECK(bytes.uplink == 3 * 4 * (20 + 2 * (24 + 20) + 2 * (16 + 12)));

  gc::powersgd_sgd<gc::comm::mpi_communicator> scheme(comm, shapes, opt);
  std::vector<float> y(scheme.dim(), 1.0f);
  const std::vector<float> bad(comm.rank() == 1 ? scheme.dim() + 2 : scheme.dim(), 0.25f);
  expect_error("rank 1 failed", [&] { scheme.step(gc::exec::seq, std::span<float>(y), std::span<const float>(bad)); });
  CHECK(y == std::vector<float>(scheme.dim(), 1.0f));
  CHECK(scheme.bytes().steps == 0);
}
