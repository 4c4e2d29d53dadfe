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
#include <limits>
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

TEST_CASE("ef_sgd without error feedback: plain compressed SGD drops what was not sent") {
  const std::vector<std::vector<float>> g{{1, -2, 0.5f, 0}, {0, 1, 3, -1}};
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    const std::size_t r = static_cast<std::size_t>(comm.rank());
    const auto& gi = g[r];
    {
      gc::ef_sgd s(gc::top_k{.k = 1}, comm, 4, {.lr = 0.5, .error_feedback = false});
      std::vector<float> x(4, 1.0f);
      // Step 1 as with error feedback: p0 = {0.5, -1, 0.25, 0} sends -1; p1 = {0, 0.5, 1.5, -0.5} sends 1.5.
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
      CHECK(x == std::vector<float>{1, 1.5f, 0.25f, 1});
      CHECK(std::all_of(s.feedback().error().begin(), s.feedback().error().end(), [](float e) { return e == 0; }));
      // The metrics still sum each step's compression error ||p - decode(m)||^2.
      CHECK(s.feedback().metrics().total_error == (r == 0 ? 0.3125 : 0.5));
      // Step 2 sends the same entries again (nothing was kept), where error feedback gave
      // {0.5, 1.5, -0.5, 1}.
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
      CHECK(x == std::vector<float>{1, 2, -0.5f, 1});
      CHECK(s.feedback().metrics().steps == 2);
    }
    {
      // An unbiased compressor, seeded per rank: x moves by the mean of what each rank's
      // compressor makes of lr * g, drawn exactly as a copy of it draws.
      std::vector<float> expected(4, 1.0f), scaled(4);
      std::vector<gc::terngrad> copies{gc::terngrad{.seed = 7}, gc::terngrad{.seed = 8}};
      for (int step = 0; step < 2; ++step) {
        std::vector<float> sum(4, 0.0f);
        for (std::size_t j = 0; j < 2; ++j) {
          for (std::size_t i = 0; i < 4; ++i) scaled[i] = 0.5f * g[j][i];
          gc::quantized_vector<float> m;
          gc::compress(gc::exec::seq, copies[j], std::span<const float>(scaled), m);
          gc::decompress_add(gc::exec::seq, m, std::span<float>(sum));
        }
        for (std::size_t i = 0; i < 4; ++i) expected[i] -= sum[i] / 2.0f;  // the mean over 2 ranks
      }
      gc::ef_sgd s(gc::terngrad{.seed = 7 + r}, comm, 4, {.lr = 0.5, .error_feedback = false});
      std::vector<float> x(4, 1.0f);
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
      CHECK(x == expected);
    }
  });
}

TEST_CASE("ef_sgd over ef21: the receivers keep the mean estimate and step with it, by hand") {
  const std::vector<std::vector<float>> g{{1, -2, 0.5f, 0}, {0, 1, 3, -1}};
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    const auto& gi = g[static_cast<std::size_t>(comm.rank())];
    using ef21_top_k = gc::ef21<gc::top_k, float>;
    gc::ef_sgd s(ef21_top_k(gc::top_k{.k = 1}, 4), comm, 4, {.lr = 0.5, .error_feedback = false});
    std::vector<float> x(4, 1.0f);
    // Step 1, h = 0: rank 0 sends -1 at 1 (h0 = {0, -1, 0, 0}); rank 1 sends 1.5 at 2.
    s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
    CHECK(std::vector<float>(s.estimate().begin(), s.estimate().end()) == std::vector<float>{0, -0.5f, 0.75f, 0});
    CHECK(x == std::vector<float>{1, 1.5f, 0.25f, 1});
    // Step 2: rank 0 compresses {0.5, 0, 0.25, 0} - sends 0.5 at 0; rank 1 compresses
    // {0, 0.5, 0, -0.5} - a tie, the lower index 1 goes. H = mean of h0 = {0.5, -1, 0, 0} and
    // h1 = {0, 0.5, 1.5, 0}, and x moves by all of H again.
    s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(gi));
    CHECK(std::vector<float>(s.estimate().begin(), s.estimate().end()) ==
          std::vector<float>{0.25f, -0.25f, 0.75f, 0});
    CHECK(x == std::vector<float>{0.75f, 1.75f, -0.5f, 1});
    const std::vector<float> h = s.feedback().base().estimate();
    CHECK(h == (comm.rank() == 0 ? std::vector<float>{0.5f, -1, 0, 0} : std::vector<float>{0, 0.5f, 1.5f, 0}));
  });
  // A residual around EF21, or an ef21 of another dimension, is refused on every rank.
  expect_error_on_every_rank(2, "error_feedback = false", [](gc::comm::local_communicator& comm) {
    gc::ef_sgd s(gc::ef21<gc::top_k, float>(gc::top_k{.k = 1}, 4), comm, 4, {.lr = 0.5});
  });
  expect_error_on_every_rank(2, "the ef21 compressor has dimension 3, the scheme 4",
                             [](gc::comm::local_communicator& comm) {
                               gc::ef_sgd s(gc::ef21<gc::top_k, float>(gc::top_k{.k = 1}, 3), comm, 4,
                                            {.lr = 0.5, .error_feedback = false});
                             });
}

TEST_CASE("ef_sgd without error feedback: a skipped step leaves DGC's and EF21's own state as it was") {
  const std::size_t d = 64;
  gc::comm::local_group::run(3, [&](gc::comm::local_communicator& comm) {
    const auto gradient = [&](std::uint64_t step) {
      std::vector<float> g(d);
      for (std::size_t i = 0; i < d; ++i)
        g[i] = std::sin(static_cast<float>(i * 7 + step * 13 + static_cast<std::size_t>(comm.rank()) * 5));
      return g;
    };
    using inner = gc::error_feedback<gc::top_k, float>;
    using dgc = gc::momentum<inner, float>;
    gc::ef_sgd a(dgc(inner(gc::top_k{.k = 3}, d), d, 0.9, gc::momentum_masking::sent), comm, d,
                 {.lr = 0.05, .error_feedback = false});
    gc::ef_sgd b(gc::ef21<gc::top_k, float>(gc::top_k{.k = 3}, d), comm, d, {.lr = 0.05, .error_feedback = false});
    // The same two schemes, never given the bad step.
    gc::ef_sgd a_ref(dgc(inner(gc::top_k{.k = 3}, d), d, 0.9, gc::momentum_masking::sent), comm, d,
                     {.lr = 0.05, .error_feedback = false});
    gc::ef_sgd b_ref(gc::ef21<gc::top_k, float>(gc::top_k{.k = 3}, d), comm, d,
                     {.lr = 0.05, .error_feedback = false});
    std::vector<float> xa(d, 1.0f), xb(d, 1.0f), xa_ref(d, 1.0f), xb_ref(d, 1.0f);
    for (std::uint64_t t = 0; t < 4; ++t) {
      std::vector<float> g = gradient(t);
      if (t == 2) {
        // Rank 1's gradient overflowed: every rank skips, and the ranks that compressed take
        // back the velocity, the inner residual and the estimate.
        std::vector<float> bad = g;
        if (comm.rank() == 1) bad[9] = std::numeric_limits<float>::infinity();
        CHECK(a.step(gc::exec::seq, std::span<float>(xa), std::span<const float>(bad)) == gc::step_status::skipped);
        CHECK(b.step(gc::exec::seq, std::span<float>(xb), std::span<const float>(bad)) == gc::step_status::skipped);
      }
      a.step(gc::exec::seq, std::span<float>(xa), std::span<const float>(g));
      b.step(gc::exec::seq, std::span<float>(xb), std::span<const float>(g));
      a_ref.step(gc::exec::seq, std::span<float>(xa_ref), std::span<const float>(g));
      b_ref.step(gc::exec::seq, std::span<float>(xb_ref), std::span<const float>(g));
    }
    CHECK(xa == xa_ref);
    CHECK(xb == xb_ref);
    const auto as_vec = [](std::span<const float> v) { return std::vector<float>(v.begin(), v.end()); };
    CHECK(as_vec(a.feedback().base().velocity()) == as_vec(a_ref.feedback().base().velocity()));
    CHECK(as_vec(a.feedback().base().base().error()) == as_vec(a_ref.feedback().base().base().error()));
    CHECK(b.feedback().base().estimate() == b_ref.feedback().base().estimate());
    CHECK(as_vec(b.estimate()) == as_vec(b_ref.estimate()));
    CHECK(a.skipped_steps() == 1);
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

// ---------------------------------------------------------------------------------------
// The exchange contract on comm::local: non-blocking operations over caller memory.

TEST_CASE("local communicator: several operations in flight, completed in any order, over caller memory") {
  for (const int n : {1, 2, 3, 4}) {
    CAPTURE(n);
    gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
      const int me = comm.rank();
      static_assert(gc::comm::communicator<gc::comm::local_communicator>);
      // Rank r contributes r + 1 bytes of value r; the receiver sees the sizes first.
      std::vector<std::byte> mine(static_cast<std::size_t>(me + 1), static_cast<std::byte>(me));
      std::vector<std::size_t> seen;
      std::vector<std::byte> all(64, std::byte{0xee});
      auto gather = comm.start_allgatherv(mine, [&](std::span<const std::size_t> sizes) {
        seen.assign(sizes.begin(), sizes.end());
        return std::span<std::byte>(all);
      });
      std::vector<float> f(7), f_expected(7);
      std::vector<double> d(5), d_expected(5);
      for (std::size_t i = 0; i < f.size(); ++i) f[i] = 0.1f * static_cast<float>(me + 1) + static_cast<float>(i);
      for (std::size_t i = 0; i < d.size(); ++i) d[i] = 1e16 * (me % 2 ? -1.0 : 1.0) + static_cast<double>(me);
      for (int r = 0; r < n; ++r) {  // the rank-order sum, by hand
        for (std::size_t i = 0; i < f.size(); ++i) {
          const float v = 0.1f * static_cast<float>(r + 1) + static_cast<float>(i);
          f_expected[i] = r == 0 ? v : f_expected[i] + v;
        }
        for (std::size_t i = 0; i < d.size(); ++i) {
          const double v = 1e16 * (r % 2 ? -1.0 : 1.0) + static_cast<double>(r);
          d_expected[i] = r == 0 ? v : d_expected[i] + v;
        }
      }
      auto sum_f = comm.start_allreduce_sum(std::span<float>(f));
      auto sum_d = comm.start_allreduce_sum(std::span<double>(d));
      // Changing the send buffer after start does not change what was sent.
      std::fill(mine.begin(), mine.end(), std::byte{0x77});
      std::vector<std::byte> root_bytes = me == n - 1 ? bytes_of({9, 8, 7}) : std::vector<std::byte>{};
      std::vector<std::byte> got;
      auto bcast = comm.start_broadcast(root_bytes, [&](std::span<const std::size_t> sizes) {
        got.resize(sizes[static_cast<std::size_t>(n - 1)]);
        return std::span<std::byte>(got);
      }, n - 1);
      auto barrier = comm.start_barrier();
      // Wait in reverse order, polling one with test() first.
      while (!barrier.test()) {
      }
      barrier.wait();
      bcast.wait();
      if (me != n - 1) CHECK(got == bytes_of({9, 8, 7}));
      sum_d.wait();
      sum_f.wait();
      CHECK(gt::same_bits(f, f_expected));
      CHECK(d == d_expected);
      gather.wait();
      REQUIRE(seen.size() == static_cast<std::size_t>(n));
      std::size_t at = 0;
      for (int r = 0; r < n; ++r) {
        CHECK(seen[static_cast<std::size_t>(r)] == static_cast<std::size_t>(r + 1));
        for (int j = 0; j <= r; ++j) CHECK(all[at++] == static_cast<std::byte>(r));
      }
      CHECK(all[at] == std::byte{0xee});  // nothing written past the blocks
    });
  }
}

TEST_CASE("local communicator: a mismatched operation in flight fails on every rank, the others complete") {
  std::atomic<int> threw{0};
  gc::comm::local_group::run(3, [&](gc::comm::local_communicator& comm) {
    std::vector<float> f(4, 1.0f);
    std::vector<double> d(4, 1.0);
    std::vector<std::byte> mine(2, std::byte{1});
    gc::comm::gathered_bytes all;
    auto first = comm.start_allgatherv(mine, all.receive());
    // Operation 2: rank 1 sums doubles where the others sum floats.
    auto second = comm.rank() == 1 ? comm.start_allreduce_sum(std::span<double>(d))
                                    : comm.start_allreduce_sum(std::span<float>(f));
    std::vector<float> shorter(comm.rank() == 2 ? 3 : 4, 2.0f);
    auto third = comm.start_allreduce_sum(std::span<float>(shorter));  // rank 2's length differs
    std::vector<float> ok(2, 1.0f);
    auto fourth = comm.start_allreduce_sum(std::span<float>(ok));
    try {
      second.wait();
    } catch (const gc::error& e) {
      CHECK(std::string(e.what()).find("collectives do not match: rank 0 called allreduce_sum<float> (root 0) but rank "
                                       "1 called allreduce_sum<double>") != std::string::npos);
      ++threw;
    }
    try {
      third.wait();
    } catch (const gc::error& e) {
      CHECK(std::string(e.what()).find("the vector length differs across ranks: rank 0 has 4, rank 2 has 3") !=
            std::string::npos);
      ++threw;
    }
    fourth.wait();
    CHECK(ok == std::vector<float>(2, 3.0f));
    first.wait();
    CHECK(all.ranks() == 3);
  });
  CHECK(threw.load() == 6);
  // Blocks that do not add up to the bytes passed fail everywhere too.
  expect_error_on_every_rank(2, "rank 1's send block counts do not add up", [](gc::comm::local_communicator& comm) {
    const std::vector<std::byte> blocks(4);
    const std::vector<std::size_t> counts{2, comm.rank() == 1 ? 3u : 2u};
    gc::comm::gathered_bytes received;
    comm.start_alltoallv(blocks, counts, received.receive()).wait();
  });
}

TEST_CASE("local communicator: a receiver that fails or gives too little fails that rank only") {
  std::atomic<int> failed{0};
  gc::comm::local_group::run(3, [&](gc::comm::local_communicator& comm) {
    const std::vector<std::byte> mine(3, std::byte{5});
    std::vector<std::byte> small(2);
    auto r = comm.start_allgatherv(mine, [&](std::span<const std::size_t>) {
      return comm.rank() == 2 ? std::span<std::byte>(small) : std::span<std::byte>();
    });
    gc::comm::gathered_bytes all;
    auto next = comm.start_allgatherv(mine, all.receive());
    if (comm.rank() == 2) {
      CHECK_THROWS_WITH_AS(r.wait(), doctest::Contains("the receiver gave 2 bytes for 9 bytes"), gc::error);
      ++failed;
    } else {
      CHECK_THROWS_WITH_AS(r.wait(), doctest::Contains("the receiver gave 0 bytes"), gc::error);
    }
    next.wait();
    CHECK(all.data.size() == 9);
    // A request dropped before completion does not hang anyone.
    { auto dropped = comm.start_barrier(); }
    gc::comm::barrier(comm);
  });
  CHECK(failed.load() == 1);
}

// ---------------------------------------------------------------------------------------
// The bucket exchange against an independent computation.

namespace {

/// p = e + s * g with two roundings (exactly e + g when s is 1), by hand.
std::vector<float> feedback_input_by_hand(const std::vector<float>& e, std::span<const float> g, float s) {
  std::vector<float> p(e.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (s == 1.0f) {
      p[i] = e[i] + g[i];
    } else {
      volatile float prod = s * g[i];
      p[i] = e[i] + prod;
    }
  }
  return p;
}

/// decode(m) as a dense vector.
template <class Payload>
std::vector<float> decoded(const Payload& m, std::size_t d) {
  std::vector<float> v(d, 0.0f);
  gc::decompress_add(m, std::span<float>(v));
  return v;
}

/// Every rank's error feedback for one bucket, computed without error_feedback or the
/// exchange: p = e + g / S; m = C(p); e = p - decode(m); the mean of decode(m) over ranks,
/// summed from zero in rank order.
template <class C>
struct bucket_by_hand {
  std::size_t d;
  std::vector<C> compressors;            // one per rank (random compressors advance)
  std::vector<std::vector<float>> e;     // one per rank
  std::vector<gc::traffic> bytes;        // this step's, per rank
  std::vector<double> total_error;       // per rank

  bucket_by_hand(const C& c, std::size_t dim, int n)
      : d(dim), compressors(static_cast<std::size_t>(n), c), e(static_cast<std::size_t>(n), std::vector<float>(dim)),
        bytes(static_cast<std::size_t>(n)), total_error(static_cast<std::size_t>(n)) {}

  std::vector<float> step(const std::vector<std::vector<float>>& g, double loss_scale) {
    const std::size_t n = e.size();
    std::vector<std::vector<float>> dec(n);
    std::vector<std::uint64_t> wire(n);
    std::size_t values = 0;
    for (std::size_t r = 0; r < n; ++r) {
      const auto p = feedback_input_by_hand(e[r], g[r], static_cast<float>(1.0 / loss_scale));
      gc::payload_t<C, float> m;
      gc::compress(gc::exec::seq, compressors[r], p, m);
      dec[r] = decoded(m, d);
      for (std::size_t i = 0; i < d; ++i) {
        volatile float minus = -1.0f * dec[r][i];
        e[r][i] = p[i] + minus;
      }
      double norm = gc::detail::squared_norm(std::span<const float>(e[r]));  // the reference summation order
      total_error[r] += norm;
      wire[r] = gc::wire_bytes(m);
      values = m.sent_elements();
    }
    std::vector<float> mean(d, 0.0f);
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t i = 0; i < d; ++i) mean[i] += dec[r][i];
    for (float& v : mean) v /= static_cast<float>(n);
    for (std::size_t r = 0; r < n; ++r) {
      if constexpr (gc::aggregation_of_v<C> == gc::aggregation_class::allreduce) {
        bytes[r] = {.uplink = values * sizeof(float), .downlink = values * sizeof(float)};
      } else {
        bytes[r] = {.uplink = wire[r], .downlink = 0};
        for (std::size_t q = 0; q < n; ++q)
          if (q != r) bytes[r].downlink += wire[q];
      }
    }
    return mean;
  }
};

/// The gradient of bucket b on rank r at step t.
std::vector<float> bucket_gradient(std::size_t d, int r, int t, std::size_t b) {
  return gt::scenario_gradient(d, r, t * 10 + static_cast<int>(b));
}

template <class C>
void check_buckets_by_hand(const char* name, const C& c, int n) {
  CAPTURE(name);
  CAPTURE(n);
  const std::vector<std::size_t> dims{13, 1, 40, 7};
  const std::vector<std::vector<std::size_t>> start_order{{0, 1, 2, 3}, {3, 1, 0, 2}, {2, 0, 3, 1}, {1, 3, 2, 0}};
  const std::vector<std::vector<std::size_t>> finish_order{{3, 2, 1, 0}, {0, 1, 2, 3}, {1, 3, 0, 2}, {2, 0, 1, 3}};
  const double scales[] = {1.0, 4.0, 0.5, 1024.0};
  constexpr int steps = 4;
  // By hand: updates[t][b] and, at the end, residuals, bytes and errors per bucket and rank.
  std::vector<bucket_by_hand<C>> hand;
  for (const std::size_t d : dims) hand.emplace_back(c, d, n);
  std::vector<std::vector<std::vector<float>>> updates(steps);
  std::vector<std::vector<std::vector<gc::traffic>>> traffic(steps);
  for (int t = 0; t < steps; ++t)
    for (std::size_t b = 0; b < dims.size(); ++b) {
      std::vector<std::vector<float>> g;
      for (int r = 0; r < n; ++r) g.push_back(bucket_gradient(dims[b], r, t, b));
      updates[static_cast<std::size_t>(t)].push_back(hand[b].step(g, scales[(static_cast<std::size_t>(t) + b) % 4]));
      traffic[static_cast<std::size_t>(t)].push_back(hand[b].bytes);
    }
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    const int me = comm.rank();
    gc::bucket_exchange ex(c, comm, dims);
    REQUIRE(ex.buckets() == dims.size());
    std::vector<std::vector<float>> grads(dims.size()), out(dims.size());
    for (int t = 0; t < steps; ++t) {
      CAPTURE(t);
      const auto& starts = start_order[static_cast<std::size_t>(t)];
      for (const std::size_t b : starts) {  // every bucket in flight at once
        grads[b] = bucket_gradient(dims[b], me, t, b);
        ex.start(gc::exec::seq, b, std::span<const float>(grads[b]), scales[(static_cast<std::size_t>(t) + b) % 4]);
        CHECK(ex.in_flight(b));
      }
      for (const std::size_t b : finish_order[static_cast<std::size_t>(t)]) {
        CAPTURE(b);
        out[b].assign(dims[b], -7.0f);
        CHECK(ex.finish(gc::exec::seq, b, std::span<float>(out[b])) == gc::step_status::applied);
        CHECK(gt::same_bits(out[b], updates[static_cast<std::size_t>(t)][b]));
        CHECK(ex.bytes(b).last == traffic[static_cast<std::size_t>(t)][b][static_cast<std::size_t>(me)]);
      }
    }
    gc::traffic total;
    double error = 0;
    for (std::size_t b = 0; b < dims.size(); ++b) {
      CAPTURE(b);
      const auto& fb = ex.feedback(b);
      CHECK(gt::same_bits(std::vector<float>(fb.error().begin(), fb.error().end()),
                          hand[b].e[static_cast<std::size_t>(me)]));
      CHECK(fb.metrics().total_error == hand[b].total_error[static_cast<std::size_t>(me)]);
      CHECK(fb.metrics().steps == steps);
      CHECK(ex.bytes(b).steps == steps);
      total += ex.bytes(b).total;
      error += fb.metrics().total_error;
    }
    CHECK(ex.total_bytes() == total);
    CHECK(ex.total_error() == error);
  });
}

}  // namespace

TEST_CASE("bucket_exchange: several buckets in flight give an independent computation's bits") {
  for (const int n : {2, 3, 4}) {
    check_buckets_by_hand("top_k", gc::top_k{.k = 3}, n);
    check_buckets_by_hand("hard_threshold", gc::hard_threshold{.lambda = 0.6}, n);
    check_buckets_by_hand("scaled_sign", gc::scaled_sign{}, n);
    check_buckets_by_hand("random_k", gc::random_k{.k = 4, .seed = 5}, n);
    check_buckets_by_hand("unbiased_random_k", gc::unbiased_random_k{.k = 3, .seed = 6}, n);
    check_buckets_by_hand("identity", gc::identity{}, n);
  }
}

TEST_CASE("bucket_exchange: residuals in gradient units, by hand, with a changing loss scale") {
  const std::vector<std::vector<float>> g{{4, -8, 2}, {0, 4, 12}};
  const std::vector<std::vector<float>> h{{2, 0, -2}, {-2, 2, 0}};
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    const auto me = static_cast<std::size_t>(comm.rank());
    gc::bucket_exchange ex(gc::top_k{.k = 1}, comm, {3});
    std::vector<float> u(3);
    // Loss scale 4: g / 4 = {1, -2, 0.5} and {0, 1, 3}; rank 0 sends -2, rank 1 sends 3.
    ex.start(gc::exec::seq, 0, std::span<const float>(g[me]), 4.0);
    CHECK(ex.finish(gc::exec::seq, 0, std::span<float>(u)) == gc::step_status::applied);
    CHECK(u == std::vector<float>{0, -1, 1.5f});
    const std::vector<float> e1 = me == 0 ? std::vector<float>{1, 0, 0.5f} : std::vector<float>{0, 1, 0};
    CHECK(std::vector<float>(ex.feedback(0).error().begin(), ex.feedback(0).error().end()) == e1);
    // Loss scale 2: p0 = e + {1, 0, -1} = {2, 0, -0.5} sends 2 at 0; p1 = e + {-1, 1, 0} =
    // {-1, 2, 0} sends 2 at 1.
    ex.start(gc::exec::seq, 0, std::span<const float>(h[me]), 2.0);
    CHECK(ex.finish(gc::exec::seq, 0, std::span<float>(u)) == gc::step_status::applied);
    CHECK(u == std::vector<float>{1, 1, 0});
    const std::vector<float> e2 = me == 0 ? std::vector<float>{0, 0, -0.5f} : std::vector<float>{-1, 0, 0};
    CHECK(std::vector<float>(ex.feedback(0).error().begin(), ex.feedback(0).error().end()) == e2);
    CHECK(ex.feedback(0).metrics().total_error == (me == 0 ? 1.25 + 0.25 : 1.0 + 1.0));
  });
}

TEST_CASE("bucket_exchange: a non-finite gradient on one rank skips that bucket everywhere and changes nothing") {
  constexpr int n = 3;
  const std::vector<std::size_t> dims{20, 9};
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    const int me = comm.rank();
    gc::bucket_exchange ex(gc::random_k{.k = 4, .seed = 2}, comm, dims);
    gc::bucket_exchange twin(gc::random_k{.k = 4, .seed = 2}, comm, dims);  // never sees the skipped step
    std::vector<float> u0(20), u1(9), w0(20), w1(9);
    const auto run_step = [&](auto& x, int t, bool poison, std::vector<float>& a, std::vector<float>& b) {
      std::vector<float> g0 = bucket_gradient(20, me, t, 0), g1 = bucket_gradient(9, me, t, 1);
      if (poison && me == 1) g0[5] = std::numeric_limits<float>::infinity();
      x.start(gc::exec::seq, 0, std::span<const float>(g0), 8.0);
      x.start(gc::exec::seq, 1, std::span<const float>(g1), 8.0);
      const auto s1 = x.finish(gc::exec::seq, 1, std::span<float>(b));
      const auto s0 = x.finish(gc::exec::seq, 0, std::span<float>(a));
      return std::pair{s0, s1};
    };
    run_step(ex, 0, false, u0, u1);
    run_step(twin, 0, false, w0, w1);
    const std::vector<float> e0(ex.feedback(0).error().begin(), ex.feedback(0).error().end());
    const gc::feedback_metrics m0 = ex.feedback(0).metrics();
    const std::uint64_t step0 = ex.feedback(0).base().step;
    const gc::traffic_log bytes0 = ex.bytes(0);
    // Step 1: rank 1's bucket 0 overflowed. Bucket 0 is skipped on every rank; bucket 1 is not.
    const auto [s0, s1] = run_step(ex, 1, true, u0, u1);
    CHECK(s0 == gc::step_status::skipped);
    CHECK(s1 == gc::step_status::applied);
    for (const float v : u0) CHECK(std::isnan(v));  // what a loss scaler checking for overflow sees
    CHECK(std::vector<float>(ex.feedback(0).error().begin(), ex.feedback(0).error().end()) == e0);
    CHECK(ex.feedback(0).metrics().steps == m0.steps);
    CHECK(ex.feedback(0).metrics().total_error == m0.total_error);
    CHECK(ex.feedback(0).base().step == step0);
    CHECK(ex.bytes(0).steps == bytes0.steps);
    CHECK(ex.bytes(0).total == bytes0.total);
    // The twin takes step 1's bucket 1 only; after that both run step 2 alike.
    std::vector<float> g1 = bucket_gradient(9, me, 1, 1);
    twin.start(gc::exec::seq, 1, std::span<const float>(g1), 8.0);
    twin.finish(gc::exec::seq, 1, std::span<float>(w1));
    CHECK(gt::same_bits(u1, w1));
    run_step(ex, 2, false, u0, u1);
    run_step(twin, 2, false, w0, w1);
    CHECK(gt::same_bits(u0, w0));
    CHECK(gt::same_bits(u1, w1));
  });
}

TEST_CASE("bucket_exchange: undo takes back the applied buckets, so a skipped step leaves no trace") {
  constexpr int n = 3;
  const std::vector<std::size_t> dims{20, 9};
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    const int me = comm.rank();
    gc::bucket_exchange ex(gc::random_k{.k = 4, .seed = 2}, comm, dims);
    gc::bucket_exchange twin(gc::random_k{.k = 4, .seed = 2}, comm, dims);  // never sees step 1
    std::vector<float> u0(20), u1(9), w0(20), w1(9);
    const auto run_step = [&](auto& x, int t, bool poison, std::vector<float>& a, std::vector<float>& b) {
      std::vector<float> g0 = bucket_gradient(20, me, t, 0), g1 = bucket_gradient(9, me, t, 1);
      if (poison && me == 2) g0[3] = -std::numeric_limits<float>::infinity();
      x.start(gc::exec::seq, 1, std::span<const float>(g1));
      x.start(gc::exec::seq, 0, std::span<const float>(g0));
      const auto s0 = x.finish(gc::exec::seq, 0, std::span<float>(a));
      const auto s1 = x.finish(gc::exec::seq, 1, std::span<float>(b));
      return std::pair{s0, s1};
    };
    CHECK_THROWS_WITH_AS(ex.undo(0), doctest::Contains("no finished exchange to take back"), gc::error);
    run_step(ex, 0, false, u0, u1);
    run_step(twin, 0, false, w0, w1);
    // Step 1: bucket 0 overflows on rank 2; the trainer skips the step and takes bucket 1 back.
    const auto [s0, s1] = run_step(ex, 1, true, u0, u1);
    CHECK(s0 == gc::step_status::skipped);
    REQUIRE(s1 == gc::step_status::applied);
    CHECK_THROWS_WITH_AS(ex.undo(0), doctest::Contains("no finished exchange"), gc::error);  // skipped: nothing to undo
    ex.undo(1);
    CHECK_THROWS_WITH_AS(ex.undo(1), doctest::Contains("no finished exchange"), gc::error);  // only once
    for (std::size_t b = 0; b < dims.size(); ++b) {
      CAPTURE(b);
      CHECK(gt::same_bits(std::vector<float>(ex.feedback(b).error().begin(), ex.feedback(b).error().end()),
                          std::vector<float>(twin.feedback(b).error().begin(), twin.feedback(b).error().end())));
      CHECK(ex.feedback(b).metrics().steps == twin.feedback(b).metrics().steps);
      CHECK(ex.feedback(b).metrics().total_error == twin.feedback(b).metrics().total_error);
      CHECK(ex.feedback(b).base().step == twin.feedback(b).base().step);
      CHECK(ex.bytes(b).total == twin.bytes(b).total);
      CHECK(ex.bytes(b).steps == twin.bytes(b).steps);
    }
    run_step(ex, 2, false, u0, u1);
    run_step(twin, 2, false, w0, w1);
    CHECK(gt::same_bits(u0, w0));
    CHECK(gt::same_bits(u1, w1));
    // Not while the bucket is in flight.
    const std::vector<float> g(9, 1.0f);
    ex.start(gc::exec::seq, 1, std::span<const float>(g));
    CHECK_THROWS_WITH_AS(ex.undo(1), doctest::Contains("no finished exchange"), gc::error);
    ex.finish(gc::exec::seq, 1, std::span<float>(u1));
  });
}

TEST_CASE("bucket_exchange: mismatches and failures reach every rank, misuse fails at once") {
  const std::vector<std::size_t> dims{6, 6};
  // Rank 1 starts the buckets in another order (each rank names the buckets of its own
  // operation: rank 0 bucket 0, rank 1 bucket 1 for ranks 0 and 2; the reverse for rank 1).
  expect_error_on_every_rank(3, "the ranks exchanged different buckets: rank 0 bucket ",
                             [&](gc::comm::local_communicator& comm) {
                               gc::bucket_exchange ex(gc::top_k{.k = 2}, comm, dims);
                               const std::vector<float> g(6, 1.0f);
                               std::vector<float> u(6);
                               const std::size_t first = comm.rank() == 1 ? 1 : 0;
                               ex.start(gc::exec::seq, first, std::span<const float>(g));
                               ex.start(gc::exec::seq, 1 - first, std::span<const float>(g));
                               ex.finish(gc::exec::seq, 0, std::span<float>(u));
                             });
  // A gradient of the wrong length on rank 2: bucket 1 fails everywhere, bucket 0 is fine,
  // and bucket 1's state is unchanged on every rank.
  gc::comm::local_group::run(3, [&](gc::comm::local_communicator& comm) {
    gc::bucket_exchange ex(gc::hard_threshold{.lambda = 0.5}, comm, dims);
    const std::vector<float> g(6, 1.0f), bad(comm.rank() == 2 ? 5 : 6, 1.0f);
    std::vector<float> u(6);
    ex.start(gc::exec::seq, 0, std::span<const float>(g));
    ex.start(gc::exec::seq, 1, std::span<const float>(bad));
    CHECK_THROWS_WITH_AS(ex.finish(gc::exec::seq, 1, std::span<float>(u)),
                         doctest::Contains("bucket_exchange::finish: rank 2 failed: gradcomp::bucket_exchange::start: "
                                           "the gradient has 5 elements"),
                         gc::error);
    CHECK(ex.finish(gc::exec::seq, 0, std::span<float>(u)) == gc::step_status::applied);
    CHECK(ex.feedback(1).metrics().steps == 0);
    CHECK(ex.bytes(1).steps == 0);
    for (const float v : ex.feedback(1).error()) CHECK(v == 0.0f);
    // A bad loss scale on one rank fails everywhere too.
    const double scale = comm.rank() == 0 ? -1.0 : 1.0;
    ex.start(gc::exec::seq, 1, std::span<const float>(g), scale);
    CHECK_THROWS_WITH_AS(ex.finish(gc::exec::seq, 1, std::span<float>(u)),
                         doctest::Contains("rank 0 failed: gradcomp::bucket_exchange::start: loss_scale must be finite "
                                           "and > 0 (got -1)"),
                         gc::error);
    // Misuse on this rank fails at once and changes nothing.
    CHECK_THROWS_WITH_AS(ex.start(gc::exec::seq, 2, std::span<const float>(g)),
                         doctest::Contains("bucket 2 is out of range (there are 2)"), gc::error);
    CHECK_THROWS_WITH_AS(ex.finish(gc::exec::seq, 0, std::span<float>(u)),
                         doctest::Contains("bucket 0 was not started"), gc::error);
    ex.start(gc::exec::seq, 0, std::span<const float>(g));
    CHECK_THROWS_WITH_AS(ex.start(gc::exec::seq, 0, std::span<const float>(g)),
                         doctest::Contains("bucket 0 is already in flight"), gc::error);
    std::vector<float> wrong(5);
    CHECK_THROWS_WITH_AS(ex.finish(gc::exec::seq, 0, std::span<float>(wrong)),
                         doctest::Contains("update has 5 elements, bucket 0 has 6"), gc::error);
    CHECK(ex.in_flight(0));
    CHECK(ex.finish(gc::exec::seq, 0, std::span<float>(u)) == gc::step_status::applied);
    CHECK(ex.feedback(0).metrics().steps == 2);
  });
  // Random-k messages that do not add up (different seeds) fail everywhere.
  expect_error_on_every_rank(3, "random-k messages differ across ranks", [](gc::comm::local_communicator& comm) {
    gc::bucket_exchange ex(gc::random_k{.k = 2, .seed = comm.rank() == 2 ? 8u : 7u}, comm, {10});
    const std::vector<float> g(10, 1.0f);
    std::vector<float> u(10);
    ex.start(gc::exec::seq, 0, std::span<const float>(g));
    ex.finish(gc::exec::seq, 0, std::span<float>(u));
  });
  expect_error_on_every_rank(2, "a bucket's size differs across ranks", [](gc::comm::local_communicator& comm) {
    gc::bucket_exchange ex(gc::top_k{.k = 2}, comm, {4, comm.rank() == 1 ? 6u : 5u});
  });
}

// ---------------------------------------------------------------------------------------
// Learning rate and loss scale that change every step, and skipped steps, by hand.

TEST_CASE("ef_sgd: a changing lr and loss scale and a skipped step, by hand") {
  const std::vector<std::vector<float>> g{{4, -8, 2}, {0, 4, 12}};  // 4 u_i, u_0 = {1, -2, 0.5}, u_1 = {0, 1, 3}
  const std::vector<std::vector<float>> h{{2, 0, -2}, {-2, 2, 0}};  // 2 u_i
  const std::vector<float> inf{1, std::numeric_limits<float>::infinity(), 0};
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    const auto me = static_cast<std::size_t>(comm.rank());
    const auto residual = [](const auto& s) {
      return std::vector<float>(s.feedback().error().begin(), s.feedback().error().end());
    };
    {  // Momentum 0: the residual holds lr times gradients.
      gc::ef_sgd s(gc::top_k{.k = 1}, comm, 3, {.lr = 0.1});
      std::vector<float> x(3, 1.0f);
      // lr 0.5, S 4: p0 = {0.5, -1, 0.25} sends -1; p1 = {0, 0.5, 1.5} sends 1.5.
      CHECK(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g[me]), {.lr = 0.5, .loss_scale = 4}) ==
            gc::step_status::applied);
      CHECK(x == std::vector<float>{1, 1.5f, 0.25f});
      const std::vector<float> e1 = me == 0 ? std::vector<float>{0.5f, 0, 0.25f} : std::vector<float>{0, 0.5f, 0};
      CHECK(residual(s) == e1);
      // Rank 1 overflowed: skipped on both ranks, nothing changes.
      CHECK(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(me == 1 ? inf : h[me]),
                   {.lr = 0.25, .loss_scale = 8}) == gc::step_status::skipped);
      CHECK(x == std::vector<float>{1, 1.5f, 0.25f});
      CHECK(residual(s) == e1);
      CHECK(s.feedback().metrics().steps == 1);
      CHECK(s.bytes().steps == 1);
      CHECK(s.skipped_steps() == 1);
      // lr 0.25, S 2: p0 = e + {0.25, 0, -0.25} = {0.75, 0, 0} sends 0.75;
      // p1 = e + {-0.25, 0.25, 0} = {-0.25, 0.75, 0} sends 0.75 at 1.
      CHECK(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(h[me]), {.lr = 0.25, .loss_scale = 2}) ==
            gc::step_status::applied);
      CHECK(x == std::vector<float>{0.625f, 1.125f, 0.25f});
      CHECK(residual(s) == (me == 0 ? std::vector<float>{0, 0, 0} : std::vector<float>{-0.25f, 0, 0}));
      // x - mean e = {0.75, 1.125, 0.25}: SGD with the schedule, 1 - 0.5 mean u - 0.25 mean u'.
    }
    {  // Momentum 0.5 in the update: v holds gradients (unscaled), the residual lr times v.
      gc::ef_sgd s(gc::top_k{.k = 1}, comm, 3, {.lr = 0.1, .momentum = 0.5, .mode = gc::momentum_mode::in_update});
      std::vector<float> x(3, 1.0f);
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g[me]), {.lr = 0.5, .loss_scale = 4});
      CHECK(x == std::vector<float>{1, 1.5f, 0.25f});
      CHECK(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(me == 0 ? inf : h[me]),
                   {.lr = 0.25, .loss_scale = 8}) == gc::step_status::skipped);
      CHECK(std::vector<float>(s.momentum().begin(), s.momentum().end()) ==
            (me == 0 ? std::vector<float>{1, -2, 0.5f} : std::vector<float>{0, 1, 3}));
      // v0 = 0.5 v0 + {1, 0, -1} = {1.5, -1, -0.75}; p0 = {0.5, 0, 0.25} + 0.25 v0 = {0.875, -0.25, 0.0625}
      // v1 = {-1, 1.5, 1.5}; p1 = {0, 0.5, 0} + 0.25 v1 = {-0.25, 0.875, 0.375}.
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(h[me]), {.lr = 0.25, .loss_scale = 2});
      CHECK(std::vector<float>(s.momentum().begin(), s.momentum().end()) ==
            (me == 0 ? std::vector<float>{1.5f, -1, -0.75f} : std::vector<float>{-1, 1.5f, 1.5f}));
      CHECK(residual(s) == (me == 0 ? std::vector<float>{0, -0.25f, 0.0625f} : std::vector<float>{-0.25f, 0, 0.375f}));
      CHECK(x == std::vector<float>{0.5625f, 1.0625f, 0.25f});
    }
    // A bad lr or loss scale on one rank fails everywhere.
    gc::ef_sgd s(gc::top_k{.k = 1}, comm, 3);
    std::vector<float> x(3, 1.0f);
    CHECK_THROWS_WITH_AS(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g[me]),
                                {.lr = 0.5, .loss_scale = me == 1 ? 0.0 : 1.0}),
                         doctest::Contains("rank 1 failed: gradcomp::ef_sgd::step: loss_scale must be finite and > 0"),
                         gc::error);
    CHECK_THROWS_WITH_AS(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g[me]), {.lr = 0.0}),
                         doctest::Contains("lr must be finite and > 0 (got 0)"), gc::error);
    CHECK(x == std::vector<float>(3, 1.0f));
  });
}

TEST_CASE("double_squeeze and liec_sgd: a changing lr and loss scale and a skipped step, by hand") {
  const std::vector<std::vector<float>> g{{4, -8, 2}, {0, 4, 12}};  // 4 u_i
  const std::vector<std::vector<float>> h{{2, 0, -2}, {-2, 2, 0}};  // 2 u_i
  const std::vector<float> nan{1, std::numeric_limits<float>::quiet_NaN(), 0};
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    const auto me = static_cast<std::size_t>(comm.rank());
    {
      gc::double_squeeze s(gc::top_k{.k = 1}, comm, 3, {.lr = 0.1});
      std::vector<float> x(3, 1.0f);
      // lr 0.5, S 4: workers send -1 at 1 and 1.5 at 2; v = {0, -0.5, 0.75}: the server sends 0.75.
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g[me]), {.lr = 0.5, .loss_scale = 4});
      CHECK(x == std::vector<float>{1, 1, 0.25f});
      const auto worker = std::vector<float>(s.worker().error().begin(), s.worker().error().end());
      CHECK(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(me == 0 ? nan : h[me]),
                   {.lr = 0.25, .loss_scale = 8}) == gc::step_status::skipped);
      CHECK(x == std::vector<float>{1, 1, 0.25f});
      CHECK(std::vector<float>(s.worker().error().begin(), s.worker().error().end()) == worker);
      if (s.serves()) {
        CHECK(std::vector<float>(s.server().error().begin(), s.server().error().end()) ==
              std::vector<float>{0, -0.5f, 0});
        CHECK(s.server().metrics().steps == 1);
      }
      CHECK(s.skipped_steps() == 1);
      CHECK(s.bytes().steps == 1);
      // lr 0.25, S 2: workers send 0.75 at 0 and 0.75 at 1; v = {0.375, 0.375, 0} + e_s = {0.375, -0.125, 0}.
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(h[me]), {.lr = 0.25, .loss_scale = 2});
      CHECK(x == std::vector<float>{0.625f, 1, 0.25f});
      CHECK(std::vector<float>(s.worker().error().begin(), s.worker().error().end()) ==
            (me == 0 ? std::vector<float>{0, 0, 0} : std::vector<float>{-0.25f, 0, 0}));
      if (s.serves())
        CHECK(std::vector<float>(s.server().error().begin(), s.server().error().end()) ==
              std::vector<float>{0, -0.125f, 0});
      // x - mean e_i - e_s = {0.75, 1.125, 0.25}: SGD with the schedule.
    }
    {
      gc::liec_sgd s(gc::top_k{.k = 1}, comm, 3, {.lr = 0.1, .sync_every = 3});
      std::vector<float> x(3, 1.0f);
      // lr 0.5, S 4: c0 = -2 at 1, r0 = {1, 0, 0.5}; c1 = 3 at 2, r1 = {0, 1, 0};
      // v = {0, -1, 1.5}: the server sends 1.5, e_s = {0, -1, 0} (gradient units).
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g[me]), {.lr = 0.5, .loss_scale = 4});
      CHECK(x == (me == 0 ? std::vector<float>{0.5f, 1, 0} : std::vector<float>{1, 0.5f, 0.25f}));
      CHECK(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(me == 1 ? nan : h[me]),
                   {.lr = 0.25, .loss_scale = 8}) == gc::step_status::skipped);
      CHECK(s.steps() == 1);  // a skipped step does not count toward sync_every
      CHECK(s.skipped_steps() == 1);
      // lr 0.25, S 2 with u0 = {1, 0, -1}, u1 = {1, 1, 0}: both send 1 at 0 (ties go low);
      // v = {1, 0, 0} + e_s = {1, -1, 0}: the server sends 1 at 0, e_s = {0, -1, 0}.
      const std::vector<float> k1{2, 2, 0};
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(me == 0 ? h[0] : k1),
             {.lr = 0.25, .loss_scale = 2});
      CHECK(x == (me == 0 ? std::vector<float>{0.25f, 1, 0.25f} : std::vector<float>{0.75f, 0.25f, 0.25f}));
      if (s.serves())
        CHECK(std::vector<float>(s.server().error().begin(), s.server().error().end()) == std::vector<float>{0, -1, 0});
      // The third applied step synchronises with this step's lr 0.5 and S 4:
      // x = mean x - 0.5 (mean u + e_s) = {0.5, 0.625, 0.25} - 0.5 ({0.5, 0, 0.5} + {0, -1, 0}).
      const std::vector<float> sync_g = me == 0 ? std::vector<float>{4, 0, 0} : std::vector<float>{0, 0, 4};
      s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(sync_g), {.lr = 0.5, .loss_scale = 4});
      CHECK(x == std::vector<float>{0.25f, 1.125f, 0});
      CHECK(s.steps() == 3);
      if (s.serves())
        CHECK(std::vector<float>(s.server().error().begin(), s.server().error().end()) == std::vector<float>(3, 0.0f));
    }
  });
}

TEST_CASE("ef_sgd: the exchange follows the compressor's aggregation class") {
  // identity is summed in compressed form (an allreduce of its values), not allgathered.
  gc::comm::local_group::run(3, [](gc::comm::local_communicator& comm) {
    constexpr std::size_t d = 50;
    gc::ef_sgd dense(gc::identity{}, comm, d, {.lr = 0.5});
    gc::ef_sgd sparse(gc::top_k{.k = 5}, comm, d, {.lr = 0.5});
    std::vector<float> x(d, 0.0f), y(d, 0.0f);
    const auto g = gt::scenario_gradient(d, comm.rank(), 1);
    dense.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
    sparse.step(gc::exec::seq, std::span<float>(y), std::span<const float>(g));
    CHECK(dense.bytes().last == gc::traffic{.uplink = d * sizeof(float), .downlink = d * sizeof(float)});
    CHECK(sparse.bytes().last == gc::traffic{.uplink = sparse_bytes(d, 5), .downlink = 2 * sparse_bytes(d, 5)});
    // The dense mean, by hand: the rank-order sum over ranks, halved (lr), over 3.
    for (std::size_t i = 0; i < d; ++i) {
      float sum = 0.0f;
      for (int r = 0; r < 3; ++r) sum += 0.5f * gt::scenario_gradient(d, r, 1)[i];
      CHECK(x[i] == -(sum / 3.0f));
    }
  });
}
