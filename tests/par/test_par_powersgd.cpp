// PowerSGD on exec::par against exec::seq. Where gradcomp::blas is linked the products run
// through BLAS, which sums in another order (and in T), so the results match within a
// tolerance, not bit for bit (docs/powersgd.md):
//   - each product entry: |c_par - c_seq| <= 2 * inner * eps(T) * (|op(A)| |op(B)|)_ij;
//   - a whole step, float, on matrices whose top r + 1 singular values are well separated:
//     ||decoded_par - decoded_seq||_F, ||e_par - e_seq||_F and ||Q_par - Q_seq||_F
//     at most 1e-4 times ||M||_F (resp. ||Q_seq||_F), over several steps.
// Without BLAS, exec::par falls back to the reference: the same bits.
#include "par_support.hpp"

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

#include <gradcomp/algorithms/powersgd_sgd.hpp>
#include <gradcomp/comm/local.hpp>
#include <gradcomp/lowrank/powersgd.hpp>

#include "../lowrank_reference.hpp"

namespace {

namespace gc = gradcomp;
namespace lt = gradcomp_test;

constexpr double step_tolerance = 1e-4;

double frobenius(std::span<const float> a) {
  double s = 0;
  for (const float v : a) s += double(v) * double(v);
  return std::sqrt(s);
}

const auto one_worker = [](std::span<float>) {};

}  // namespace

TEST_CASE("par powersgd: BLAS is what exec::par runs where gradcomp::blas is linked") {
  using has = std::bool_constant<gc::backend::has_kernel<gc::lowrank::gemm_hook, gc::exec::par_t, gc::lowrank::gemm_shape,
                                                         std::span<const float>, std::span<const float>, std::span<float>>>;
#if defined(GRADCOMP_HAVE_CBLAS)
  CHECK(has::value);
#else
  CHECK_FALSE(has::value);
#endif
}

TEST_CASE("par powersgd: every product is within 2 inner eps of the reference, entry by entry") {
  struct shape_case {
    bool ta, tb;
    std::size_t rows, cols, inner;
  };
  for (const shape_case c : {shape_case{false, false, 37, 3, 53}, shape_case{true, false, 53, 4, 37},
                             shape_case{false, true, 37, 53, 2}, shape_case{false, false, 300, 1, 700},
                             shape_case{true, false, 700, 2, 300}}) {
    CAPTURE(c.rows);
    CAPTURE(c.inner);
    const gc::lowrank::gemm_shape s{.a_transposed = c.ta, .b_transposed = c.tb, .rows = c.rows, .cols = c.cols, .inner = c.inner};
    std::vector<float> a(c.rows * c.inner), b(c.inner * c.cols), seq(c.rows * c.cols), par(c.rows * c.cols, -1.0f);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(lt::test_uniform(1, i));
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(lt::test_uniform(2, i));
    gc::lowrank::gemm<gc::exec::seq_t, float>(gc::exec::seq, s, a, b, seq);
    gc::lowrank::gemm<gc::exec::par_t, float>(gc::exec::par, s, a, b, par);
    std::vector<float> abs_a(a.size()), abs_b(b.size()), bound(seq.size());
    for (std::size_t i = 0; i < a.size(); ++i) abs_a[i] = std::abs(a[i]);
    for (std::size_t i = 0; i < b.size(); ++i) abs_b[i] = std::abs(b[i]);
    gc::lowrank::reference_gemm<float>(s, abs_a, abs_b, bound);
    const double eps = std::numeric_limits<float>::epsilon();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < seq.size(); ++i)
      if (!(std::abs(double(par[i]) - double(seq[i])) <= 2.0 * double(c.inner) * eps * double(bound[i]))) ++bad;
    CHECK(bad == 0);
  }
}

TEST_CASE("par powersgd: whole steps stay within the stated tolerance of exec::seq") {
  const std::vector<gc::tensor_shape> shapes{{96, 80}, {1, 80}, {64, 120}};
  const std::vector<double> sigma{8, 4, 2, 1, 0.5};
  gc::powersgd<float> seq(shapes, {.rank = 2, .seed = 3}), par(shapes, {.rank = 2, .seed = 3});
  const std::size_t d = seq.dim();
  std::vector<float> out_seq(d), out_par(d);
  for (int step = 0; step < 4; ++step) {
    CAPTURE(step);
    std::vector<float> g;
    for (const auto& sh : shapes) {
      const auto part = sh.rows == 1 ? std::vector<float>(sh.cols, 0.25f)
                                     : lt::low_rank_plus_noise<float>(sh.rows, sh.cols, sigma, 0.01, 40 + static_cast<std::uint64_t>(step));
      g.insert(g.end(), part.begin(), part.end());
    }
    std::vector<float> m(d);
    for (std::size_t i = 0; i < d; ++i) m[i] = seq.residual()[i] + g[i];
    seq.step(gc::exec::seq, std::span<const float>(g), 1.0f, std::span<float>(out_seq), one_worker);
    par.step(gc::exec::par, std::span<const float>(g), 1.0f, std::span<float>(out_par), one_worker);
    const double scale = frobenius(m);
    CHECK(std::sqrt(lt::squared_frobenius_distance<float>(out_par, out_seq)) <= step_tolerance * scale);
    CHECK(std::sqrt(lt::squared_frobenius_distance<float>(par.residual(), seq.residual())) <= step_tolerance * scale);
    CHECK(std::sqrt(lt::squared_frobenius_distance<float>(par.all_q(), seq.all_q())) <= step_tolerance * frobenius(seq.all_q()));
    MESSAGE("relative differences par vs seq (decoded, e, Q): ",
            std::sqrt(lt::squared_frobenius_distance<float>(out_par, out_seq)) / scale, " ",
            std::sqrt(lt::squared_frobenius_distance<float>(par.residual(), seq.residual())) / scale, " ",
            std::sqrt(lt::squared_frobenius_distance<float>(par.all_q(), seq.all_q())) / frobenius(seq.all_q()));
    // The uncompressed bias is not a product: the same bits.
    CHECK(std::memcmp(out_par.data() + 96 * 80, out_seq.data() + 96 * 80, 80 * sizeof(float)) == 0);
  }
}

TEST_CASE("par powersgd_sgd: replicas on 2 in-process ranks stay identical on exec::par") {
  const std::vector<gc::tensor_shape> shapes{{64, 48}, {1, 48}};
  std::vector<std::vector<float>> finals(2);
  gc::comm::local_group::run(2, [&](gc::comm::local_communicator& comm) {
    gc::powersgd_sgd<gc::comm::local_communicator> scheme(comm, shapes, {.lr = 0.1, .rank = 4, .seed = 1});
    std::vector<float> x(scheme.dim(), 0.5f), g(scheme.dim());
    for (int t = 0; t < 3; ++t) {
      for (std::size_t i = 0; i < g.size(); ++i)
        g[i] = static_cast<float>(lt::test_uniform(10 * static_cast<std::uint64_t>(comm.rank()) + static_cast<std::uint64_t>(t), i));
      REQUIRE(scheme.step(gc::exec::par, std::span<float>(x), std::span<const float>(g)) == gc::step_status::applied);
    }
    finals[static_cast<std::size_t>(comm.rank())] = x;
  });
  CHECK(std::memcmp(finals[0].data(), finals[1].data(), finals[0].size() * sizeof(float)) == 0);
}
