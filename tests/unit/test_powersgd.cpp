// PowerSGD (lowrank/*.hpp, algorithms/powersgd_sgd.hpp) on exec::seq: hand-checkable cases of
// the reference, the skip rule, the warm start, error-feedback conservation, seeds, errors
// that change nothing, the distributed scheme on 1, 2 and 4 in-process ranks, and the error
// against the best rank-r approximation (SVD) on a fixed matrix.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <gradcomp/algorithms/powersgd_sgd.hpp>
#include <gradcomp/comm/local.hpp>
#include <gradcomp/lowrank/powersgd.hpp>
#include <limits>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "../lowrank_reference.hpp"
#include "error_message.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

using gt::contains;
using gt::error_message;

const auto one_worker = [](std::span<float>) {};
const auto one_worker_d = [](std::span<double>) {};

template <class T>
bool same_bits(std::span<const T> a, std::span<const T> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

}  // namespace

TEST_CASE("powersgd: a rank-1 matrix is recovered exactly up to rounding, at rank 1 and rank 2") {
  constexpr std::size_t n = 6, m = 5;
  std::vector<double> u(n), v(m);
  for (std::size_t i = 0; i < n; ++i) u[i] = 0.5 + static_cast<double>(i);
  for (std::size_t j = 0; j < m; ++j) v[j] = (j % 2 ? -1.0 : 1.0) * (1.0 + 0.25 * static_cast<double>(j));
  std::vector<double> g(n * m);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < m; ++j) g[i * m + j] = u[i] * v[j];
  for (const std::size_t r : {std::size_t{1}, std::size_t{2}}) {
    CAPTURE(r);
    gc::powersgd<double> ps({{n, m}}, {.rank = r, .seed = 3});
    std::vector<double> decoded(n * m);
    ps.step(gc::exec::seq, std::span<const double>(g), 1.0, std::span<double>(decoded), one_worker_d);
    for (std::size_t k = 0; k < g.size(); ++k) {
      CHECK(decoded[k] == doctest::Approx(g[k]).epsilon(1e-13));
      CHECK(std::abs(ps.residual()[k]) <= 1e-13 * std::abs(g[k]) + 1e-14);
    }
    // At rank 2 the second column of P = M Q is parallel to the first: degenerate, zeroed,
    // and its column of Q is drawn afresh for the next step.
    CHECK(ps.last_step().degenerate_columns == r - 1);
    CHECK(ps.last_step().redrawn_columns == r - 1);
    if (r == 2) {
      const auto p = ps.p(0);
      for (std::size_t i = 0; i < n; ++i) CHECK(p[i * 2 + 1] == 0.0);
      const auto q = ps.q(0);
      const auto stream = gc::lowrank::q_stream(3, 0, 1);
      for (std::size_t i = 0; i < m; ++i) CHECK(q[i * 2 + 1] == gc::lowrank::q_draw<double>(stream, i * 2 + 1));
    }
  }
}

TEST_CASE("powersgd: P has orthonormal columns after a step") {
  constexpr std::size_t n = 20, m = 12, r = 3;
  const std::vector<double> sigma{5, 3, 2, 1};
  const auto g = gt::low_rank_plus_noise<float>(n, m, sigma, 0.05, 11);
  gc::powersgd<float> ps({{n, m}}, {.rank = r, .seed = 1});
  std::vector<float> decoded(n * m);
  for (int step = 0; step < 3; ++step) {
    ps.step(gc::exec::seq, std::span<const float>(g), 1.0f, std::span<float>(decoded), one_worker);
    const auto p = ps.p(0);
    for (std::size_t a = 0; a < r; ++a)
      for (std::size_t b = 0; b < r; ++b) {
        double dot = 0;
        for (std::size_t i = 0; i < n; ++i) dot += double(p[i * r + a]) * double(p[i * r + b]);
        CHECK(std::abs(dot - (a == b ? 1.0 : 0.0)) <= 1e-6);
      }
  }
}

TEST_CASE("powersgd: the skip rule sends 1-D tensors and small matrices uncompressed, with no residual") {
  using gc::lowrank::compresses;
  CHECK_FALSE(compresses({1, 1000}, 1));   // a bias: r (1 + d) > d
  CHECK_FALSE(compresses({1000, 1}, 1));
  CHECK_FALSE(compresses({4, 4}, 2));      // 2 (4 + 4) = 16 = 16: no saving
  CHECK(compresses({5, 5}, 2));            // 20 < 25
  CHECK_FALSE(compresses({5, 5}, 3));      // 30 >= 25
  CHECK(compresses({512, 4608}, 4));
  CHECK_FALSE(compresses({0, 7}, 1));
  CHECK_FALSE(compresses({7, 7}, 0));

  const std::vector<gc::tensor_shape> shapes{{8, 6}, {1, 6}, {4, 4}, {10, 3}};
  gc::powersgd<float> ps(shapes, {.rank = 2, .seed = 5});
  const auto& l = ps.layout();
  CHECK(l.dim == 48 + 6 + 16 + 30);
  CHECK(l.tensors[0].compressed);
  CHECK_FALSE(l.tensors[1].compressed);
  CHECK_FALSE(l.tensors[2].compressed);
  CHECK(l.tensors[3].compressed);  // 2 (10 + 3) = 26 < 30
  CHECK(l.uncompressed_values == 22);
  CHECK(l.p_values == 2 * (8 + 10));
  CHECK(l.q_values == 2 * (6 + 3));
  CHECK(ps.values_per_step() == 22 + 36 + 18);
  std::vector<float> g(l.dim), decoded(l.dim);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(gt::test_uniform(9, i));
  ps.step(gc::exec::seq, std::span<const float>(g), 0.5f, std::span<float>(decoded), one_worker);
  for (const std::size_t t : {std::size_t{1}, std::size_t{2}}) {
    const auto& slot = l.tensors[t];
    for (std::size_t k = 0; k < l.size_of(slot); ++k) {
      CHECK(decoded[slot.offset + k] == 0.5f * g[slot.offset + k]);  // the mean of one worker: exact
      CHECK(ps.residual(t)[k] == 0.0f);
    }
    CHECK(ps.q(t).empty());
  }
}

TEST_CASE("powersgd: the warm start keeps the all-reduced Q, and the next P is M Q with it") {
  constexpr std::size_t n = 9, m = 7, r = 2;
  const std::vector<double> sigma{4, 2, 1};
  const auto g1 = gt::low_rank_plus_noise<double>(n, m, sigma, 0.1, 21);
  const auto g2 = gt::low_rank_plus_noise<double>(n, m, sigma, 0.1, 22);
  gc::powersgd<double> ps({{n, m}}, {.rank = r, .seed = 8});
  // Q before the first step: the seeded draw, uniform on [-1, 1).
  std::vector<double> q0(ps.q(0).begin(), ps.q(0).end());
  const auto stream = gc::lowrank::q_stream(8, 0, 0);
  for (std::size_t k = 0; k < q0.size(); ++k) {
    CHECK(q0[k] == 2.0 * stream.uniform(k) - 1.0);
    CHECK(q0[k] >= -1.0);
    CHECK(q0[k] < 1.0);
  }
  std::vector<double> decoded(n * m);
  ps.step(gc::exec::seq, std::span<const double>(g1), 1.0, std::span<double>(decoded), one_worker_d);
  // Q after step 1 = M1^T P1 (M1 = g1: the residual was zero).
  std::vector<double> expect_q(m * r);
  gc::lowrank::reference_gemm<double>({.a_transposed = true, .rows = m, .cols = r, .inner = n}, g1, ps.p(0), expect_q);
  CHECK(same_bits<double>(ps.q(0), expect_q));
  const std::vector<double> q1 = expect_q;
  const std::vector<double> e1(ps.residual().begin(), ps.residual().end());
  // Step 2 starts from Q1: P2 = orthogonalise(M2 Q1), M2 = e1 + g2.
  std::vector<double> m2(n * m), p2(n * r);
  for (std::size_t k = 0; k < m2.size(); ++k) m2[k] = e1[k] + g2[k];
  gc::lowrank::reference_gemm<double>({.rows = n, .cols = r, .inner = m}, m2, q1, p2);
  gc::lowrank::orthogonalise(std::span<double>(p2), n, r);
  ps.step(gc::exec::seq, std::span<const double>(g2), 1.0, std::span<double>(decoded), one_worker_d);
  CHECK(same_bits<double>(ps.p(0), p2));
  CHECK(ps.steps() == 2);
}

TEST_CASE("powersgd: error feedback conserves M = decoded + e up to one rounding, over steps") {
  const std::vector<gc::tensor_shape> shapes{{16, 12}, {1, 12}, {12, 10}};
  gc::powersgd<float> ps(shapes, {.rank = 2, .seed = 4});
  const std::size_t d = ps.dim();
  std::vector<float> decoded(d);
  const float scale = 0.25f;
  for (int step = 0; step < 5; ++step) {
    std::vector<float> g(d);
    for (std::size_t i = 0; i < d; ++i) g[i] = static_cast<float>(gt::test_uniform(100 + static_cast<std::uint64_t>(step), i));
    const std::vector<float> e(ps.residual().begin(), ps.residual().end());
    ps.step(gc::exec::seq, std::span<const float>(g), scale, std::span<float>(decoded), one_worker);
    for (std::size_t i = 0; i < d; ++i) {
      const float m = e[i] + scale * g[i];
      const float sum = decoded[i] + ps.residual()[i];
      CHECK(std::abs(sum - m) <= std::numeric_limits<float>::epsilon() * (std::abs(m) + std::abs(decoded[i])));
    }
  }
}

TEST_CASE("powersgd: the same seed gives the same bits, another seed another Q") {
  const std::vector<gc::tensor_shape> shapes{{10, 8}, {8, 6}};
  gc::powersgd<float> a(shapes, {.rank = 2, .seed = 42}), b(shapes, {.rank = 2, .seed = 42}),
      c(shapes, {.rank = 2, .seed = 43});
  CHECK(same_bits(a.all_q(), b.all_q()));
  CHECK_FALSE(same_bits(a.all_q(), c.all_q()));
  CHECK_FALSE(same_bits(a.q(0), a.q(1).subspan(0, std::min(a.q(0).size(), a.q(1).size()))));  // tensors draw apart
  std::vector<float> g(a.dim()), da(a.dim()), db(a.dim());
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(gt::test_uniform(5, i));
  for (int step = 0; step < 3; ++step) {
    a.step(gc::exec::seq, std::span<const float>(g), 1.0f, std::span<float>(da), one_worker);
    b.step(gc::exec::seq, std::span<const float>(g), 1.0f, std::span<float>(db), one_worker);
  }
  CHECK(same_bits<float>(da, db));
  CHECK(same_bits(a.residual(), b.residual()));
}

TEST_CASE("powersgd: user errors give clear messages and change nothing") {
  CHECK(contains(error_message([] { gc::powersgd<float> ps({{4, 4}}, {.rank = 0}); }),
                 "gradcomp::powersgd: rank must be at least 1 (got 0)"));
  gc::powersgd<float> ps({{6, 5}}, {.rank = 1, .seed = 2});
  std::vector<float> g(30, 1.0f), decoded(30, 7.0f);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(gt::test_uniform(1, i));
  ps.step(gc::exec::seq, std::span<const float>(g), 1.0f, std::span<float>(decoded), one_worker);
  const std::vector<float> e(ps.residual().begin(), ps.residual().end()), q(ps.q(0).begin(), ps.q(0).end());
  const std::vector<float> decoded_before = decoded;
  const auto unchanged = [&] {
    CHECK(std::vector<float>(ps.residual().begin(), ps.residual().end()) == e);
    CHECK(std::vector<float>(ps.q(0).begin(), ps.q(0).end()) == q);
    CHECK(ps.steps() == 1);
    CHECK(decoded == decoded_before);
  };
  std::vector<float> short_g(29, 1.0f);
  CHECK(error_message([&] { ps.step(gc::exec::seq, std::span<const float>(short_g), 1.0f, std::span<float>(decoded), one_worker); }) ==
        "gradcomp::powersgd::step: the gradient has 29 elements, the scheme's dimension is 30");
  unchanged();
  std::vector<float> short_out(31);
  CHECK(contains(error_message([&] { ps.step(gc::exec::seq, std::span<const float>(g), 1.0f, std::span<float>(short_out), one_worker); }),
                 "the output has 31 elements"));
  unchanged();
  std::vector<float> huge(30, 3e38f);
  CHECK(contains(error_message([&] { ps.step(gc::exec::seq, std::span<const float>(huge), 2.0f, std::span<float>(decoded), one_worker); }),
                 "M = e + scale * g is not finite"));
  unchanged();
  // An all-reduce that makes P non-finite (as a broken transport would) fails before any commit.
  CHECK(contains(error_message([&] {
                   ps.step(gc::exec::seq, std::span<const float>(g), 1.0f, std::span<float>(decoded),
                           [](std::span<float> v) { v[0] = std::numeric_limits<float>::infinity(); });
                 }),
                 "the all-reduced P (or an uncompressed tensor's mean) is not finite"));
  unchanged();
  CHECK(contains(error_message([&] { ps.finish(gc::exec::seq, std::span<float>(decoded), one_worker, "test"); }),
                 "finish() needs a successful prepare() first"));
  unchanged();
  CHECK(contains(error_message([&] { (void)ps.q(5); }), "tensor 5 is not in [0, 1)"));
}

namespace {

/// Each rank's final replica and residual after `steps` steps of powersgd_sgd on n ranks.
struct replica {
  std::vector<float> x, e;
  gc::traffic_log bytes;
};

std::vector<replica> run_ranks(int n, const std::vector<gc::tensor_shape>& shapes, int steps) {
  std::vector<replica> out(static_cast<std::size_t>(n));
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    gc::powersgd_sgd<gc::comm::local_communicator> scheme(comm, shapes, {.lr = 0.1, .rank = 2, .seed = 9});
    std::vector<float> x(scheme.dim(), 1.0f);
    for (int t = 0; t < steps; ++t) {
      std::vector<float> g(scheme.dim());
      for (std::size_t i = 0; i < g.size(); ++i)
        g[i] = static_cast<float>(gt::test_uniform(1000 * static_cast<std::uint64_t>(comm.rank()) + static_cast<std::uint64_t>(t), i));
      REQUIRE(scheme.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g)) == gc::step_status::applied);
    }
    auto& mine = out[static_cast<std::size_t>(comm.rank())];
    mine.x = x;
    mine.e.assign(scheme.compression().residual().begin(), scheme.compression().residual().end());
    mine.bytes = scheme.bytes();
  });
  return out;
}

}  // namespace

TEST_CASE("powersgd_sgd: on 1, 2 and 4 in-process ranks every replica is the same, bytes as counted") {
  const std::vector<gc::tensor_shape> shapes{{12, 10}, {1, 10}, {10, 6}, {3, 3}};
  const std::uint64_t values = 10 + 9 + 2 * (12 + 10) + 2 * (10 + 6);
  for (const int n : {1, 2, 4}) {
    CAPTURE(n);
    const auto reps = run_ranks(n, shapes, 4);
    for (const auto& r : reps) {
      CHECK(same_bits<float>(r.x, reps[0].x));
      CHECK(r.bytes.steps == 4);
      CHECK(r.bytes.last == gc::traffic{.uplink = values * 4, .downlink = values * 4});
      CHECK(r.bytes.total.uplink == 4 * values * 4);
    }
    if (n > 1) CHECK_FALSE(same_bits<float>(reps[0].e, reps[1].e));  // residuals are each worker's own
  }
  // One rank: the scheme is x -= decoded of the single-worker reference.
  const auto one = run_ranks(1, shapes, 1);
  gc::powersgd<float> ps(shapes, {.rank = 2, .seed = 9});
  std::vector<float> g(ps.dim()), decoded(ps.dim()), x(ps.dim(), 1.0f);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(gt::test_uniform(0, i));
  ps.step(gc::exec::seq, std::span<const float>(g), 0.1f, std::span<float>(decoded), one_worker);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] -= decoded[i];
  CHECK(same_bits<float>(one[0].x, x));
}

TEST_CASE("powersgd_sgd: the update is the mean of the workers' M projected on P, the same on every rank") {
  const std::vector<gc::tensor_shape> shapes{{8, 7}};
  constexpr int n = 3;
  std::vector<std::vector<double>> grads(n);
  for (int r = 0; r < n; ++r) {
    grads[static_cast<std::size_t>(r)].resize(56);
    for (std::size_t i = 0; i < 56; ++i) grads[static_cast<std::size_t>(r)][i] = gt::test_uniform(50 + static_cast<std::uint64_t>(r), i);
  }
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    gc::powersgd_sgd<gc::comm::local_communicator, double> scheme(comm, shapes, {.lr = 1.0, .rank = 2, .seed = 1});
    std::vector<double> x(56, 0.0);
    scheme.step(gc::exec::seq, std::span<double>(x), std::span<const double>(grads[static_cast<std::size_t>(comm.rank())]));
    // decoded = P P^T mean(M): check against the mean gradient projected on the last P.
    const auto p = scheme.compression().p(0);
    std::vector<double> mean(56, 0.0), pt_mean(2 * 7, 0.0);
    for (const auto& g : grads)
      for (std::size_t i = 0; i < 56; ++i) mean[i] += g[i] / n;
    for (std::size_t a = 0; a < 2; ++a)
      for (std::size_t j = 0; j < 7; ++j)
        for (std::size_t i = 0; i < 8; ++i) pt_mean[a * 7 + j] += p[i * 2 + a] * mean[i * 7 + j];
    for (std::size_t i = 0; i < 8; ++i)
      for (std::size_t j = 0; j < 7; ++j) {
        const double want = p[i * 2] * pt_mean[j] + p[i * 2 + 1] * pt_mean[7 + j];
        CHECK(-x[i * 7 + j] == doctest::Approx(want).epsilon(1e-12));
      }
  });
}

TEST_CASE("powersgd_sgd: a failure or a NaN on one rank reaches every rank and changes nothing") {
  const std::vector<gc::tensor_shape> shapes{{9, 8}, {1, 8}};
  std::mutex m;
  std::vector<std::string> messages;
  gc::comm::local_group::run(3, [&](gc::comm::local_communicator& comm) {
    gc::powersgd_sgd<gc::comm::local_communicator> scheme(comm, shapes, {.lr = 0.5, .rank = 2, .seed = 2});
    std::vector<float> x(scheme.dim(), 1.0f), g(scheme.dim());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(gt::test_uniform(static_cast<std::uint64_t>(comm.rank()), i));
    scheme.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
    const std::vector<float> x0 = x;
    const std::vector<float> e0(scheme.compression().residual().begin(), scheme.compression().residual().end());
    const std::vector<float> q0(scheme.compression().all_q().begin(), scheme.compression().all_q().end());
    const auto unchanged = [&] {
      CHECK(x == x0);
      CHECK(std::vector<float>(scheme.compression().residual().begin(), scheme.compression().residual().end()) == e0);
      CHECK(std::vector<float>(scheme.compression().all_q().begin(), scheme.compression().all_q().end()) == q0);
      CHECK(scheme.bytes().steps == 1);
    };
    std::vector<float> bad(comm.rank() == 1 ? g.size() + 1 : g.size(), 0.5f);
    const std::string msg = error_message([&] { scheme.step(gc::exec::seq, std::span<float>(x), std::span<const float>(bad)); });
    {
      std::lock_guard lock(m);
      messages.push_back(msg);
    }
    unchanged();
    std::vector<float> nan_g = g;
    if (comm.rank() == 2) nan_g[3] = std::numeric_limits<float>::quiet_NaN();
    CHECK(scheme.step(gc::exec::seq, std::span<float>(x), std::span<const float>(nan_g)) == gc::step_status::skipped);
    CHECK(scheme.skipped_steps() == 1);
    unchanged();
    CHECK(contains(error_message([&] {
                     scheme.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g), {.lr = comm.rank() == 0 ? -1.0 : 0.1});
                   }),
                   "powersgd_sgd::step: rank 0 failed: gradcomp::powersgd_sgd::step: lr must be finite and > 0 (got -1)"));
    unchanged();
    CHECK(scheme.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g)) == gc::step_status::applied);
  });
  REQUIRE(messages.size() == 3);
  for (const auto& msg : messages) {
    CHECK(msg == messages[0]);
    CHECK(contains(msg, "gradcomp::powersgd_sgd::step: rank 1 failed: gradcomp::powersgd_sgd::step: the gradient has 81 elements"));
  }
}

TEST_CASE("powersgd_sgd: mismatched options or shapes fail on every rank at construction") {
  CHECK_THROWS_WITH_AS(gc::comm::local_group::run(2,
                                                  [](gc::comm::local_communicator& comm) {
                                                    const std::vector<gc::tensor_shape> shapes{{8, comm.rank() == 0 ? std::size_t{6} : std::size_t{7}}};
                                                    gc::powersgd_sgd<gc::comm::local_communicator> s(comm, shapes, {});
                                                  }),
                       doctest::Contains("powersgd_sgd: the tensor shapes (a fingerprint) differs across ranks"), gc::error);
  CHECK_THROWS_WITH_AS(gc::comm::local_group::run(2,
                                                  [](gc::comm::local_communicator& comm) {
                                                    const std::vector<gc::tensor_shape> shapes{{8, 6}};
                                                    gc::powersgd_sgd<gc::comm::local_communicator> s(
                                                        comm, shapes, {.rank = comm.rank() == 1 ? std::size_t{0} : std::size_t{2}});
                                                  }),
                       doctest::Contains("rank 1 failed: gradcomp::powersgd: rank must be at least 1"), gc::error);
}

TEST_CASE("powersgd: on a fixed matrix the error approaches the best rank-r error (SVD)") {
  // Low rank plus noise, compressed again and again with the residual cleared before each step,
  // so M is the same matrix every step and the warm start is subspace iteration.
  constexpr std::size_t n = 40, m = 30, r = 3;
  const std::vector<double> sigma{10, 6, 3, 1.5};
  const auto g = gt::low_rank_plus_noise<double>(n, m, sigma, 0.05, 77);
  const double best = gt::best_rank_error<double>(g, n, m, r);
  REQUIRE(best > 0);
  gc::powersgd<double> ps({{n, m}}, {.rank = r, .seed = 5});
  const std::vector<double> zero(n * m, 0.0);
  std::vector<double> decoded(n * m);
  std::vector<double> ratios;
  for (int step = 0; step < 40; ++step) {
    ps.restore(zero, ps.all_q(), ps.steps());
    ps.step(gc::exec::seq, std::span<const double>(g), 1.0, std::span<double>(decoded), one_worker_d);
    ratios.push_back(gt::squared_frobenius_distance<double>(g, decoded) / best);
    CHECK(ratios.back() >= 1.0 - 1e-9);  // nothing beats the SVD
  }
  MESSAGE("ratio to the best rank-3 error, steps 1, 2, 5, 10, 40: ", ratios[0], " ", ratios[1], " ", ratios[4], " ",
          ratios[9], " ", ratios[39]);
  CHECK(ratios[39] <= 1.0 + 1e-6);
  CHECK(ratios[39] <= ratios[0]);
}
