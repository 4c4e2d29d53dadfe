// hard_threshold and its fused error-feedback step on exec::par: bit-identical to exec::seq.
#include "par_compare.hpp"

#include <cmath>
#include <span>

using namespace gradcomp_par_test;

namespace {

template <class T>
void check_threshold(const std::vector<T>& x, double lambda) {
  CAPTURE(lambda);
  gc::sparse_vector<T> ref, got;
  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = lambda}, x, ref);
  for (const auto& policy : policies()) {
    CAPTURE(policy_name(policy));
    got.indices.assign(3, 7);  // stale contents must be replaced
    gc::compress(policy, gc::hard_threshold{.lambda = lambda}, x, got);
    check_same_sparse(ref, got);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("par hard_threshold: bit-identical to seq on every input kind and size", T, GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      for (const std::size_t d : par_sizes()) {
        const std::string kind_name = gt::to_string(kind);
        CAPTURE(kind_name);
        CAPTURE(d);
        // The largest size (16 chunks) for one kind, as the other par tests do: 3 * 65536 + 4099
        // already spans chunks with ragged tails for every kind.
        if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::normal) continue;
        std::vector<T> x = gt::make_input<T>(kind, d, d + 1);
        if (d % 3 == 0) place_specials(x, d, 1 + d / 1000);
        // Thresholds at typical densities, exactly at a present magnitude, and extremes.
        std::vector<double> lambdas{0.0, 0.5, 1.0, 1.000015, 2.5, 1e30, std::numeric_limits<double>::infinity()};
        if (!x.empty() && !std::isnan(x[d / 2])) lambdas.push_back(std::fabs(static_cast<double>(x[d / 2])));
        lambdas.push_back(static_cast<double>(std::numeric_limits<T>::denorm_min()) * 300.5);
        lambdas.push_back(1.0 + 1e-12);  // between two floats: float inputs need the rounded-up bound
        for (const double lambda : lambdas) check_threshold(x, lambda);
      }
    }
  });
}

TEST_CASE("par hard_threshold: lambdas between floats and beyond float range") {
  std::vector<float> x;
  for (float v = 0.5f; v < 2.0f; v = std::nextafter(v, 3.0f)) {
    x.push_back(v);
    if (x.size() > 200000) break;
  }
  x.push_back(std::numeric_limits<float>::max());
  x.push_back(-std::numeric_limits<float>::infinity());
  for (const double lambda : {1.0, std::nextafter(1.0, 2.0), std::nextafter(1.0, 0.0), 1.0000000596046448,
                              static_cast<double>(std::numeric_limits<float>::max()) * 1.0000001, 3.5e38, 1e300})
    check_threshold(x, lambda);
}

TEST_CASE("par hard_threshold: errors match seq and leave nothing half-done") {
  std::vector<float> x(100, 1.0f);
  gc::sparse_vector<float> out;
  CHECK_THROWS_AS(gc::compress(gc::exec::par, gc::hard_threshold{.lambda = -1.0}, x, out), gc::error);
  CHECK_THROWS_AS(gc::compress(gc::exec::par, gc::hard_threshold{.lambda = std::nan("")}, x, out), gc::error);
  CHECK_THROWS_WITH_AS(gc::compress(gc::exec::par, gc::hard_threshold{.lambda = -1.0}, x, out),
                       doctest::Contains("lambda must be >= 0"), gc::error);
}

TEST_CASE_TEMPLATE("par error_feedback<hard_threshold>: fused step bit-identical to seq over many steps", T, float,
                   double) {
  for_each_thread_count([] {
    for (const std::size_t d : par_sizes()) {
      for (const auto& policy : policies()) {
        CAPTURE(d);
        CAPTURE(policy_name(policy));
        const double lambda = 1.1;
        gc::error_feedback<gc::hard_threshold, T> ref(gc::hard_threshold{.lambda = lambda}, d);
        gc::error_feedback<gc::hard_threshold, T> got(gc::hard_threshold{.lambda = lambda}, d);
        for (int step = 0; step < 4; ++step) {
          CAPTURE(step);
          const auto kind = gt::all_input_kinds[static_cast<std::size_t>(step + static_cast<int>(d)) %
                                                std::size(gt::all_input_kinds)];
          std::vector<T> g = gt::make_input<T>(kind, d, d * 7 + static_cast<std::size_t>(step));
          if (step == 3) place_specials(g, d + 3, 1 + d / 5000);
          const T scale = step % 2 == 0 ? T(1) : T(0.3);  // the e + g path and the e + scale * g path
          if (step == 3 && d > 0) {  // NaN and Inf: rejected alike, nothing changes
            const std::vector<T> before(got.error().begin(), got.error().end());
            check_same_error([&] { ref.compress(gc::exec::seq, std::span<const T>(g), scale); },
                             [&] { got.compress(policy, std::span<const T>(g), scale); });
            CHECK(gt::same_result(std::span<const T>(before), got.error()));
            REQUIRE(gt::same_result(ref.error(), got.error()));
            CHECK(ref.metrics().steps == got.metrics().steps);
            continue;
          }
          const auto& m_ref = ref.compress(gc::exec::seq, std::span<const T>(g), scale);
          const auto& m_got = got.compress(policy, std::span<const T>(g), scale);
          check_same_sparse(m_ref, m_got, /*computed=*/true);  // values are p = e + scale * g
          REQUIRE(gt::same_result(ref.error(), got.error()));
          CHECK(ref.metrics().steps == got.metrics().steps);
          CHECK(ref.metrics().elements_sent == got.metrics().elements_sent);
          CHECK(ref.metrics().wire_bytes == got.metrics().wire_bytes);
          CHECK(gt::same_result(ref.metrics().total_error, got.metrics().total_error));
        }
      }
    }
  });
}

TEST_CASE("par error_feedback<hard_threshold>: a wrong size or scale leaves the residual unchanged") {
  gc::error_feedback<gc::hard_threshold> ef(gc::hard_threshold{.lambda = 0.5}, 10);
  std::vector<float> g(10, 1.0f);
  ef.compress(gc::exec::par, std::span<const float>(g), 0.25f);
  const std::vector<float> before(ef.error().begin(), ef.error().end());
  std::vector<float> wrong(11, 1.0f);
  CHECK_THROWS_AS(ef.compress(gc::exec::par, std::span<const float>(wrong), 1.0f), gc::error);
  CHECK_THROWS_AS(ef.compress(gc::exec::par, std::span<const float>(g), std::numeric_limits<float>::infinity()),
                  gc::error);
  ef.base().lambda = -1.0;
  CHECK_THROWS_AS(ef.compress(gc::exec::par, std::span<const float>(g), 1.0f), gc::error);
  CHECK(gt::same_result(std::span<const float>(before), ef.error()));
  CHECK(ef.metrics().steps == 1);
}

TEST_CASE_TEMPLATE("par reductions: l1 and squared norms bit-identical to seq", T, GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      for (const std::size_t d : par_sizes()) {
        const std::string kind_name = gt::to_string(kind);
        CAPTURE(kind_name);
        CAPTURE(d);
        if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::heavy_tailed) continue;  // as above
        std::vector<T> x = gt::make_input<T>(kind, d, d + 11);
        if (d % 4 == 1) place_specials(x, d, 2);
        for (const auto& policy : policies()) {
          const std::span<const T> s(x);
          CHECK(gt::same_result(gc::cpu::detail::l1_norm(policy, s), gc::detail::l1_norm(s)));
          CHECK(gt::same_result(gc::cpu::detail::squared_norm(policy, s), gc::detail::squared_norm(s)));
          if (d > 0) {
            CHECK(gt::same_result(gc::cpu::detail::mean_abs(policy, s), gc::detail::mean_abs(s)));
            CHECK(gt::same_result(gc::cpu::detail::l2_norm(policy, s), gc::detail::l2_norm(s)));
          }
        }
      }
    }
  });
}
