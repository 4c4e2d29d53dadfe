// budget_threshold: Top-k calibration on the first call, hard-threshold after it, and the
// controller's exact budget identity.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <gradcomp/gradcomp.hpp>

#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

static_assert(gc::absolute_compressor<gc::budget_threshold, float>);
static_assert(!gc::contractive_compressor<gc::budget_threshold, float>);
static_assert(std::is_same_v<gc::payload_t<gc::budget_threshold, double>, gc::sparse_vector<double>>);

TEST_CASE_TEMPLATE("budget_threshold: the first call is Top-k and sets lambda to its k-th magnitude", T, float,
                   double) {
  const std::size_t d = 1000;
  const std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 3);
  gc::budget_threshold c{.density = 0.02, .window = 50};
  CHECK(c.absolute_bound(d) == std::numeric_limits<double>::infinity());
  gc::sparse_vector<T> got, expected;
  gc::compress(gc::exec::seq, c, x, got);
  gc::compress(gc::exec::seq, gc::top_k{.k = 20}, x, expected);
  CHECK(got == expected);
  double kth = std::numeric_limits<double>::infinity();
  for (const T v : expected.values) kth = std::min(kth, std::fabs(static_cast<double>(v)));
  CHECK(c.lambda == kth);
  CHECK(c.absolute_bound(d) >= d * kth * kth);
  // The second call is hard_threshold with that lambda, then the controller moves it.
  const double lambda = c.lambda;
  const std::vector<T> y = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 4);
  gc::compress(gc::exec::seq, c, y, got);
  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = lambda}, y, expected);
  CHECK(got == expected);
  const double rho = static_cast<double>(expected.nnz()) / d;
  CHECK(c.lambda == lambda * std::exp((rho / 0.02 - 1.0) / 50.0));
}

TEST_CASE("budget_threshold: the budget identity, and fresh N(0, 1) gradients settle at the target density") {
  const std::size_t d = 20000, steps = 400;
  const double target = 0.01;
  gc::budget_threshold c{.density = target, .window = 20};
  gc::sparse_vector<float> m;
  std::vector<double> lambdas, densities;
  for (std::size_t t = 0; t < steps; ++t) {
    const std::vector<float> g = gt::make_input<float>(gt::input_kind::normal, d, 100 + t);
    gc::compress(gc::exec::seq, c, g, m);
    lambdas.push_back(c.lambda);
    densities.push_back(static_cast<double>(m.nnz()) / d);
  }
  // The budget identity: over the controlled calls 1..T-1, mean density =
  // target * (1 + window * ln(lambda_T / lambda_1) / (T - 1)).
  double mean_all = 0;
  for (std::size_t t = 1; t < steps; ++t) mean_all += densities[t] / static_cast<double>(steps - 1);
  CHECK(mean_all == doctest::Approx(target * (1 + 20.0 * std::log(lambdas.back() / lambdas.front()) / (steps - 1)))
                        .epsilon(1e-9));
  // The last 200 steps: lambda near the N(0, 1) quantile for 1% (2.576) and the mean density on target.
  double mean = 0;
  for (std::size_t t = steps - 200; t < steps; ++t) mean += densities[t] / 200.0;
  CHECK(mean == doctest::Approx(target).epsilon(0.05));
  CHECK(c.lambda == doctest::Approx(2.576).epsilon(0.03));
}

TEST_CASE_TEMPLATE("budget_threshold: zeros stay uncalibrated, empty input, bad parameters change nothing", T, float,
                   double) {
  gc::budget_threshold c{.density = 0.5};
  gc::sparse_vector<T> m;
  gc::compress(gc::exec::seq, c, std::vector<T>(10, T(0)), m);
  CHECK(m.nnz() == 5);  // Top-k of zeros
  CHECK(c.lambda == 0.0);
  gc::compress(gc::exec::seq, c, std::vector<T>{}, m);
  CHECK(m.nnz() == 0);
  CHECK(c.lambda == 0.0);
  gc::compress(gc::exec::seq, c, std::vector<T>{T(0), T(3), T(-1), T(0)}, m);
  CHECK(c.lambda == 1.0);
  const auto before = m;
  for (const gc::budget_threshold bad :
       {gc::budget_threshold{.density = 0.0}, gc::budget_threshold{.density = 1.5},
        gc::budget_threshold{.density = std::numeric_limits<double>::quiet_NaN()},
        gc::budget_threshold{.density = 0.1, .window = 0}, gc::budget_threshold{.density = 0.1, .lambda = -1.0},
        gc::budget_threshold{.density = 0.1, .lambda = std::numeric_limits<double>::infinity()}}) {
    gc::budget_threshold b = bad;
    CHECK_THROWS_WITH_AS(gc::compress(gc::exec::seq, b, std::vector<T>{T(1)}, m),
                         doctest::Contains("budget_threshold"), gc::error);
    CHECK(m == before);
    CHECK((b.lambda == bad.lambda || (std::isnan(b.lambda) && std::isnan(bad.lambda))));
  }
}

TEST_CASE("budget_threshold: a call far over budget moves lambda by at most e^30, so it stays finite") {
  gc::budget_threshold c{.density = 1e-6, .window = 1, .lambda = 1.0};
  c.adapt(1000, 1000);  // rho / density - 1 = 999999
  CHECK(c.lambda == std::exp(gc::budget_threshold::max_log_step));
  c.adapt(0, 1000);  // nothing sent: lambda / e
  CHECK(c.lambda == doctest::Approx(std::exp(29.0)));
  c.adapt(5, 0);  // d = 0: no information, no change
  CHECK(c.lambda == doctest::Approx(std::exp(29.0)));
}
