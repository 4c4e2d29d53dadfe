// The communicators and the distributed schemes on the in-process communicator: the
// collectives, hand-computed steps of EF-SGD, DoubleSqueeze and LIEC-SGD, their invariants,
// byte accounting, and errors that reach every rank instead of hanging.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <gradcomp/distributed.hpp>
#include <mutex>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "../distributed_scenarios.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::vector<std::byte> as_vector(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

/// Bytes of a sparse message with `nnz` float entries.
std::uint64_t sparse_bytes(std::size_t dim, std::size_t nnz) {
  gc::sparse_vector<float> m;
  m.dim = dim;
  for (std::size_t j = 0; j < nnz; ++j) {
    m.indices.push_back(static_cast<std::uint32_t>(j));
    m.values.push_back(1.0f);
  }
  return gc::wire_bytes(m);
}

/// Runs f on n ranks and checks that every rank throws gc::error containing `text`.
template <class F>
void expect_error_on_every_rank(int n, const std::string& text, F&& f) {
  std::atomic<int> threw{0};
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    try {
      f(comm);
    } catch (const gc::error& e) {
      const std::string what = e.what();
      if (what.find(text) != std::string::npos) ++threw;
      else
        throw std::runtime_error("rank " + std::to_string(comm.rank()) + " threw another error: " + what);
      return;
    }
    throw std::runtime_error("rank " + std::to_string(comm.rank()) + " did not throw");
  });
  CHECK(threw.load() == n);
}

}  // namespace

TEST_CASE("local communicator: allgatherv, gatherv, broadcast, alltoallv move the right bytes") {
  gc::comm::local_group::run(3, [](gc::comm::local_communicator& comm) {
    const int me = comm.rank();
    REQUIRE(comm.size() == 3);
    // Rank r sends r + 1 bytes of value 10 r.
    std::vector<std::byte> mine(static_cast<std::size_t>(me + 1), static_cast<std::byte>(10 * me));
    gc::comm::gathered_bytes all;
    comm.allgatherv(mine, all);
    REQUIRE(all.ranks() == 3);
    CHECK(as_vector(all.from(0)) == bytes_of({0}));
    CHECK(as_vector(all.from(1)) == bytes_of({10, 10}));
    CHECK(as_vector(all.from(2)) == bytes_of({20, 20, 20}));
    CHECK(all.bytes_except(me) == 6u - static_cast<std::size_t>(me + 1));

    comm.gatherv(mine, all, 1);
    if (me == 1) {
      CHECK(all.ranks() == 3);
      CHECK(as_vector(all.from(2)) == bytes_of({20, 20, 20}));
    } else {
      CHECK(all.ranks() == 0);
    }

    std::vector<std::byte> buffer = me == 2 ? bytes_of({7, 8, 9, 10}) : bytes_of({1});
    comm.broadcast(buffer, 2);
    CHECK(buffer == bytes_of({7, 8, 9, 10}));

    // alltoallv: rank r sends to rank j the bytes {r, j} (and nothing to itself).
    gc::comm::scattered_bytes send;
    std::vector<std::size_t> sizes{2, 2, 2};
    sizes[static_cast<std::size_t>(me)] = 0;
    send.resize(sizes);
    for (int j = 0; j < 3; ++j)
      if (j != me) {
        send.data[send.offsets[static_cast<std::size_t>(j)]] = static_cast<std::byte>(me);
        send.data[send.offsets[static_cast<std::size_t>(j)] + 1] = static_cast<std::byte>(j);
      }
    gc::comm::gathered_bytes received;
    comm.alltoallv(send, received);
    for (int r = 0; r < 3; ++r) {
      if (r == me)
        CHECK(received.from(r).empty());
      else
        CHECK(as_vector(received.from(r)) == bytes_of({r, me}));
    }
    comm.barrier();
  });
}

TEST_CASE("local communicator: mismatched collectives and bad roots fail on every rank") {
  expect_error_on_every_rank(3, "collectives do not match", [](gc::comm::local_communicator& comm) {
    std::vector<std::byte> buffer(1);
    gc::comm::gathered_bytes all;
    if (comm.rank() == 1)
      comm.broadcast(buffer, 0);
    else
      comm.allgatherv(buffer, all);
  });
  expect_error_on_every_rank(2, "collectives do not match", [](gc::comm::local_communicator& comm) {
    std::vector<std::byte> buffer(1);
    comm.broadcast(buffer, comm.rank());  // every rank names itself the root
  });
  expect_error_on_every_rank(2, "root 5 is not a rank", [](gc::comm::local_communicator& comm) {
    std::vector<std::byte> buffer(1);
    comm.broadcast(buffer, 5);
  });
  CHECK_THROWS_WITH_AS(gc::comm::local_group(0), doctest::Contains("size must be >= 1"), gc::error);
}

TEST_CASE("local communicator: a rank that throws aborts the others instead of hanging") {
  // Rank 1 throws before the collective; ranks 0 and 2 wait in it and must be released.
  CHECK_THROWS_WITH_AS(gc::comm::local_group::run(3,
                                                  [](gc::comm::local_communicator& comm) {
                                                    if (comm.rank() == 1) throw std::runtime_error("boom on rank 1");
                                                    comm.barrier();
                                                    comm.barrier();
                                                  }),
                       "boom on rank 1", std::runtime_error);
}

TEST_CASE("collectives: shard_of tiles 0..d, allreduce_sum is the rank-order sum on every rank") {
  for (const std::size_t d : {0u, 1u, 5u, 1001u})
    for (int n = 1; n <= 5; ++n) {
      std::size_t next = 0;
      for (int r = 0; r < n; ++r) {
        const auto s = gc::comm::shard_of(d, n, r);
        CHECK(s.begin == next);
        CHECK(s.size() + 1 >= d / static_cast<std::size_t>(n) + (d % static_cast<std::size_t>(n) != 0));
        next = s.end;
      }
      CHECK(next == d);
    }
  const std::size_t d = 1001;
  const int n = 4;
  std::vector<float> expected(d);
  for (int r = 0; r < n; ++r) {
    const auto g = gt::scenario_gradient(d, r, 0);
    for (std::size_t i = 0; i < d; ++i) expected[i] = r == 0 ? g[i] : expected[i] + g[i];
  }
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    std::vector<float> x = gt::scenario_gradient(d, comm.rank(), 0);
    gc::comm::allreduce_sum(comm, std::span<float>(x));
    CHECK(gt::same_bits(x, expected));
    std::vector<float> shard;
    const auto mine = gt::scenario_gradient(d, comm.rank(), 0);
    gc::comm::reduce_scatter_sum(comm, std::span<const float>(mine), shard);
    const auto range = gc::comm::shard_of(d, n, comm.rank());
    CHECK(gt::same_bits(shard, std::span<const float>(expected).subspan(range.begin, range.size())));
  });
  expect_error_on_every_rank(3, "the vector length differs across ranks: rank 0 has 10, rank 2 has 11",
                             [](gc::comm::local_communicator& comm) {
                               std::vector<float> x(comm.rank() == 2 ? 11 : 10, 1.0f);
                               gc::comm::allreduce_sum(comm, std::span<float>(x));
                             });
}

TEST_CASE("ef_sgd: hand-computed steps with top_k on two workers, bytes per direction") {
  const std::vector<std::vector<float>> g{{1, -2, 0.5f, 0}, {0, 1, 3, -1}};
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    const auto& gi = g[static_cast<std::size_t>(comm.rank())];
    gc::ef_sgd s(gc::top_k{.k = 1}, comm, 4, {.lr = 0.5});
    std::vector<float> x(4, 1.0f);
    // Step 1: p0 = {0.5, -1, 0.25, 0} sends -1 at 1; p1 = {0, 0.5, 1.5, -0.5} sends 1.5 at 2.
    s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
    CHECK(x == std::vector<float>{1, 1.5f, 0.25f, 1});
    CHECK(s.last_mean()[1] == -0.5f);
    const std::vector<float> e1 = comm.rank() == 0 ? std::vector<float>{0.5f, 0, 0.25f, 0}
                                                   : std::vector<float>{0, 0.5f, 0, -0.5f};
    CHECK(std::vector<float>(s.feedback().error().begin(), s.feedback().error().end()) == e1);
    CHECK(s.bytes().last == gc::traffic{.uplink = sparse_bytes(4, 1), .downlink = sparse_bytes(4, 1)});
    // Step 2: p0 = {1, -1, 0.5, 0}: a tie, the lower index 0 goes; p1 = {0, 1, 1.5, -1} sends 1.5.
    s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
    CHECK(x == std::vector<float>{0.5f, 1.5f, -0.5f, 1});
    CHECK(s.bytes().total.uplink == 2 * sparse_bytes(4, 1));
    CHECK(s.bytes().steps == 2);
  });
}

TEST_CASE("ef_sgd: momentum on the aggregate and in the local update, by hand") {
  const std::vector<std::vector<float>> g{{1, -2, 0.5f, 0}, {0, 1, 3, -1}};
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    const auto& gi = g[static_cast<std::size_t>(comm.rank())];
    {
      gc::ef_sgd s(gc::top_k{.k = 1}, comm, 4, {.lr = 0.5, .momentum = 0.5});
      std::vector<float> x(4, 1.0f);
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));  // v = {0, -0.5, 0.75, 0}
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));  // v = 0.5 v + {0.5, 0, 0.75, 0}
      CHECK(std::vector<float>(s.momentum().begin(), s.momentum().end()) == std::vector<float>{0.5f, -0.25f, 1.125f, 0});
      CHECK(x == std::vector<float>{0.5f, 1.75f, -0.875f, 1});
    }
    {
      gc::ef_sgd s(gc::top_k{.k = 1}, comm, 4, {.lr = 0.5, .momentum = 0.5, .mode = gc::momentum_mode::in_update});
      std::vector<float> x(4, 1.0f);
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
      // v_i = 1.5 g_i; p0 = {1.25, -1.5, 0.625, 0} sends -1.5; p1 = {0, 1.25, 2.25, -1.25} sends 2.25.
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
      CHECK(std::vector<float>(s.last_mean().begin(), s.last_mean().end()) ==
            std::vector<float>{0, -0.75f, 1.125f, 0});
      CHECK(x == std::vector<float>{1, 2.25f, -0.875f, 1});
    }
  });
}

TEST_CASE("double_squeeze: hand-computed step, single server and sharded") {
  const std::vector<std::vector<float>> g{{1, -2, 0.5f, 0}, {0, 1, 3, -1}};
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    const auto& gi = g[static_cast<std::size_t>(comm.rank())];
    {
      gc::double_squeeze s(gc::top_k{.k = 1}, comm, 4, {.lr = 0.5});
      std::vector<float> x(4, 1.0f);
      // Workers send -1 at 1 and 1.5 at 2; v = {0, -0.5, 0.75, 0}; the server sends 0.75 at 2.
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
      CHECK(x == std::vector<float>{1, 1, 0.25f, 1});
      if (comm.rank() == 0) {
        REQUIRE(s.serves());
        CHECK(std::vector<float>(s.server().error().begin(), s.server().error().end()) ==
              std::vector<float>{0, -0.5f, 0, 0});
        CHECK(s.bytes().last == gc::traffic{});  // the root's messages never leave it
      } else {
        CHECK_FALSE(s.serves());
        CHECK_THROWS_WITH_AS(s.server(), doctest::Contains("serves no shard"), gc::error);
        CHECK(s.bytes().last == gc::traffic{.uplink = sparse_bytes(4, 1), .downlink = sparse_bytes(4, 1)});
      }
    }
    {
      gc::double_squeeze s(gc::top_k{.k = 1}, comm, 4, {.lr = 0.5, .server = {.mode = gc::server_mode::sharded}});
      std::vector<float> x(4, 1.0f);
      // Shards [0, 2) on rank 0, [2, 4) on rank 1, top_k{1} per shard:
      // worker 0 sends -1 (shard 0) and 0.25 (shard 1); worker 1 sends 0.5 and 1.5.
      // Server 0: mean {0, -0.25} sends -0.25; server 1: mean {0.875, 0} sends 0.875.
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
      CHECK(x == std::vector<float>{1, 1.25f, 0.125f, 1});
      CHECK(s.bytes().last == gc::traffic{.uplink = sparse_bytes(2, 1), .downlink = sparse_bytes(2, 1)});
      CHECK(s.server().dim() == 2);
    }
  });
}

TEST_CASE("liec_sgd: hand-computed compressed step and synchronising step") {
  const std::vector<std::vector<float>> g{{1, -2, 0.5f, 0}, {0, 1, 3, -1}};
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    const auto& gi = g[static_cast<std::size_t>(comm.rank())];
    gc::liec_sgd s(gc::top_k{.k = 1}, comm, 4, {.lr = 0.5, .sync_every = 2});
    std::vector<float> x(4, 1.0f);
    // c0 = -2 at 1, r0 = {1, 0, 0.5, 0}; c1 = 3 at 2, r1 = {0, 1, 0, -1}.
    // v = {0, -1, 1.5, 0}; the server sends 1.5 at 2, e_s = {0, -1, 0, 0}.
    s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
    const std::vector<float> x1 = comm.rank() == 0 ? std::vector<float>{0.5f, 1, 0, 1}
                                                   : std::vector<float>{1, 0.5f, 0.25f, 1.5f};
    CHECK(x == x1);
    // Step 2 synchronises: x = mean x - 0.5 (mean g + e_s) on both ranks; e_s = 0.
    s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
    CHECK(x == std::vector<float>{0.5f, 1.5f, -0.75f, 1.5f});
    if (s.serves()) {
      CHECK(std::vector<float>(s.server().error().begin(), s.server().error().end()) == std::vector<float>(4, 0.0f));
    }
    CHECK(s.bytes().last.uplink == 2 * 4 * sizeof(float));
    CHECK(s.bytes().last.downlink == (comm.rank() == 0 ? 2 : 3) * 4 * sizeof(float));
    CHECK(s.steps() == 2);
  });
}

TEST_CASE("invariants: the error-corrected mean model moves like SGD on the mean gradient") {
  constexpr std::size_t d = 1001;
  constexpr int n = 4, steps = 6;
  constexpr float lr = 0.1f;
  // z_t: SGD on the mean gradient, in double.
  std::vector<double> z(d);
  const auto x0 = gt::scenario_start(d);
  for (std::size_t i = 0; i < d; ++i) z[i] = x0[i];
  for (int t = 0; t < steps; ++t)
    for (int r = 0; r < n; ++r) {
      const auto g = gt::scenario_gradient(d, r, t);
      for (std::size_t i = 0; i < d; ++i) z[i] -= lr * g[i] / n;
    }
  const auto check_close = [&](const std::vector<double>& got) {
    double worst = 0.0;
    for (std::size_t i = 0; i < d; ++i) worst = std::max(worst, std::fabs(got[i] - z[i]) / (1.0 + std::fabs(z[i])));
    CHECK(worst < 1e-5);
  };
  for (const gc::server_mode mode : {gc::server_mode::single, gc::server_mode::sharded}) {
    CAPTURE(static_cast<int>(mode));
    // DoubleSqueeze: mean x - mean e_i - e_s; LIEC-SGD: mean x - lr e_s; EF-SGD: mean x - mean e_i.
    std::vector<double> ds(d, 0.0), liec(d, 0.0), ef(d, 0.0);
    std::mutex m;
    gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
      std::vector<float> x = gt::scenario_start(d), y = x, w = x;
      gc::double_squeeze a(gc::top_k{.k = 37}, comm, d, {.lr = lr, .server = {.mode = mode}});
      gc::liec_sgd b(gc::scaled_sign{}, comm, d, {.lr = lr, .sync_every = 4, .server = {.mode = mode}});
      gc::ef_sgd c(gc::hard_threshold{.lambda = 0.3}, comm, d, {.lr = lr});
      for (int t = 0; t < steps; ++t) {
        const auto g = gt::scenario_gradient(d, comm.rank(), t);
        a.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
        b.step(gc::exec::seq, std::span<float>(y), std::span<const float>(g));
        c.step(gc::exec::seq, std::span<float>(w), std::span<const float>(g));
      }
      std::lock_guard lock(m);
      for (std::size_t i = 0; i < d; ++i) {
        ds[i] += static_cast<double>(x[i]) / n;
        liec[i] += static_cast<double>(y[i]) / n;
        ef[i] += (static_cast<double>(w[i]) - c.feedback().error()[i]) / n;
      }
      for (int sh = 0; sh < a.layout().shards(); ++sh) {  // the worker residuals, shard by shard
        const auto range = a.layout().shard(sh);
        for (std::size_t i = 0; i < range.size(); ++i) ds[range.begin + i] -= a.worker(sh).error()[i] / n;
      }
      if (a.serves()) {
        const auto range = a.layout().shard(a.layout().served_by(comm.rank()));
        for (std::size_t i = 0; i < range.size(); ++i) {
          ds[range.begin + i] -= a.server().error()[i];
          liec[range.begin + i] -= lr * static_cast<double>(b.server().error()[i]);
        }
      }
    });
    check_close(ds);
    check_close(liec);
    check_close(ef);
  }
}

TEST_CASE("scenarios: replicas agree across ranks where the scheme says so, and runs repeat bit for bit") {
  for (const std::string& name : gt::scenario_names()) {
    CAPTURE(name);
    const auto first = gt::run_scenario_locally(name, 4);
    const auto again = gt::run_scenario_locally(name, 4);
    for (std::size_t r = 0; r < first.size(); ++r) {
      CHECK(gt::same_bits(first[r].x, again[r].x));
      CHECK(gt::same_bits(first[r].worker_error, again[r].worker_error));
      CHECK(gt::same_bits(first[r].server_error, again[r].server_error));
      CHECK(first[r].bytes == again[r].bytes);
      for (float v : first[r].x) REQUIRE(std::isfinite(v));
    }
    // One rank is a valid group: the schemes then reduce to their single-worker forms.
    for (const auto& r : gt::run_scenario_locally(name, 1))
      for (float v : r.x) REQUIRE(std::isfinite(v));
    // EF-SGD and DoubleSqueeze apply the same update on every rank: replicas stay equal.
    // LIEC-SGD's replicas differ (each adds its own r_i) except right after a sync.
    if (name.rfind("liec_sgd", 0) != 0)
      for (std::size_t r = 1; r < first.size(); ++r) CHECK(gt::same_bits(first[r].x, first[0].x));
  }
}

TEST_CASE("ef_sgd with random_k: values-only allreduce, different seeds fail on every rank") {
  constexpr std::size_t d = 1001;
  const auto results = gt::run_scenario_locally("ef_sgd/random_k", 3);
  for (const auto& r : results)
    for (const auto& step : r.per_step) CHECK(step == gc::traffic{.uplink = 40 * sizeof(float), .downlink = 40 * sizeof(float)});
  expect_error_on_every_rank(3, "random-k messages differ across ranks", [](gc::comm::local_communicator& comm) {
    gc::ef_sgd s(gc::random_k{.k = 5, .seed = comm.rank() == 1 ? 2u : 1u}, comm, d);
    std::vector<float> x(d), g(d, 1.0f);
    s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
  });
}

TEST_CASE("errors: mismatched sizes fail on every rank and leave every rank's state unchanged") {
  constexpr std::size_t d = 64;
  expect_error_on_every_rank(4, "the dimension differs across ranks", [](gc::comm::local_communicator& comm) {
    gc::ef_sgd s(gc::top_k{.k = 3}, comm, comm.rank() == 3 ? d + 1 : d);
  });
  // Options that are bad on one rank only still fail everywhere (no rank is left waiting).
  expect_error_on_every_rank(3, "rank 2 failed: gradcomp::double_squeeze: lr must be finite and > 0",
                             [](gc::comm::local_communicator& comm) {
                               gc::double_squeeze s(gc::top_k{.k = 3}, comm, d, {.lr = comm.rank() == 2 ? -1.0 : 0.1});
                             });
  expect_error_on_every_rank(2, "root 2 is not a rank in [0, 2)", [](gc::comm::local_communicator& comm) {
    gc::liec_sgd s(gc::top_k{.k = 3}, comm, d, {.lr = 0.1, .server = {.root = comm.rank() == 0 ? 2 : 0}});
  });
  expect_error_on_every_rank(2, "momentum must be in [0, 1)", [](gc::comm::local_communicator& comm) {
    gc::ef_sgd s(gc::top_k{.k = 3}, comm, d, {.lr = 0.1, .momentum = comm.rank() == 1 ? 1.0 : 0.0});
  });
  expect_error_on_every_rank(2, "sync_every differs across ranks", [](gc::comm::local_communicator& comm) {
    gc::liec_sgd s(gc::top_k{.k = 3}, comm, d, {.lr = 0.1, .sync_every = comm.rank() == 1 ? 3u : 4u});
  });
  for (const gc::server_mode mode : {gc::server_mode::single, gc::server_mode::sharded}) {
    gc::comm::local_group::run(3, [&](gc::comm::local_communicator& comm) {
      gc::double_squeeze ds(gc::top_k{.k = 3}, comm, d, {.lr = 0.1, .server = {.mode = mode}});
      gc::liec_sgd liec(gc::top_k{.k = 3}, comm, d, {.lr = 0.1, .sync_every = 2, .server = {.mode = mode}});
      gc::ef_sgd ef(gc::top_k{.k = 3}, comm, d, {.lr = 0.1, .momentum = 0.5, .mode = gc::momentum_mode::in_update});
      std::vector<float> x(d, 1.0f);
      const auto g = gt::scenario_gradient(d, comm.rank(), 0);
      ds.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
      ef.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
      const std::vector<float> x_before = x;
      const std::vector<float> worker_before(ds.worker(0).error().begin(), ds.worker(0).error().end());
      const std::vector<float> ef_before(ef.feedback().error().begin(), ef.feedback().error().end());
      const std::vector<float> v_before(ef.momentum().begin(), ef.momentum().end());
      std::vector<float> server_before;
      if (ds.serves()) server_before.assign(ds.server().error().begin(), ds.server().error().end());
      // Rank 1 passes a gradient of the wrong length: every rank must throw.
      const std::vector<float> bad(comm.rank() == 1 ? d - 1 : d, 0.5f);
      CHECK_THROWS_WITH_AS(ds.step(gc::exec::seq, std::span<float>(x), std::span<const float>(bad)),
                           doctest::Contains("rank 1 failed"), gc::error);
      CHECK_THROWS_WITH_AS(ef.step(gc::exec::seq, std::span<float>(x), std::span<const float>(bad)),
                           doctest::Contains("rank 1 failed"), gc::error);
      CHECK_THROWS_WITH_AS(liec.step(gc::exec::seq, std::span<float>(x), std::span<const float>(bad)),
                           doctest::Contains("rank 1 failed"), gc::error);
      CHECK(x == x_before);
      CHECK(std::vector<float>(ds.worker(0).error().begin(), ds.worker(0).error().end()) == worker_before);
      CHECK(std::vector<float>(ef.feedback().error().begin(), ef.feedback().error().end()) == ef_before);
      CHECK(std::vector<float>(ef.momentum().begin(), ef.momentum().end()) == v_before);
      if (ds.serves())
        CHECK(std::vector<float>(ds.server().error().begin(), ds.server().error().end()) == server_before);
      CHECK(ds.bytes().steps == 1);
      CHECK(liec.steps() == 0);
      // The schemes still work after the failed step.
      ds.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
      liec.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
      CHECK(ds.bytes().steps == 2);
    });
  }
}
