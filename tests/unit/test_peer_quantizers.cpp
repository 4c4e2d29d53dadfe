// TernGrad, random dithering, the unscaled sign and momentum<C> (Signum, DGC's momentum
// correction and masking, Nesterov): definitions, categories, statistics and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <gradcomp/gradcomp.hpp>

#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

static_assert(gc::unbiased_compressor<gc::terngrad, float>);
static_assert(!gc::contractive_compressor<gc::terngrad, double>);
static_assert(!gc::absolute_compressor<gc::terngrad, double>);
static_assert(gc::seeded_compressor<gc::terngrad>);
static_assert(std::is_same_v<gc::payload_t<gc::terngrad, float>, gc::quantized_vector<float>>);
// The unscaled sign has no bound of any kind (sign.hpp says why).
static_assert(gc::compressor<gc::sign, double>);
static_assert(!gc::contractive_compressor<gc::sign, float>);
static_assert(!gc::unbiased_compressor<gc::sign, float>);
static_assert(!gc::absolute_compressor<gc::sign, float>);
static_assert(std::is_same_v<gc::payload_t<gc::sign, float>, gc::sign_vector<float>>);
// momentum<C> is a compressor with C's payload and aggregation.
static_assert(gc::compressor<gc::momentum<gc::top_k, float>, float>);
static_assert(std::is_same_v<gc::payload_t<gc::momentum<gc::sign, double>, double>, gc::sign_vector<double>>);
static_assert(gc::aggregation_of_v<gc::momentum<gc::random_k, float>> == gc::aggregation_class::allreduce);

namespace {

template <class T>
std::vector<T> decoded(const auto& payload, std::size_t d) {
  std::vector<T> dense(d, T(0));
  gc::decompress_add(payload, std::span<T>(dense));
  return dense;
}

}  // namespace

TEST_CASE_TEMPLATE("terngrad: levels in {-1, 0, 1} at scale max |x|, following QSGD's rule", T, float, double) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    const std::string kind_name = gt::to_string(kind);
    CAPTURE(kind_name);
    const std::vector<T> x = gt::make_input<T>(kind, 777, 9);
    gc::terngrad c{.seed = 3, .step = 5};
    gc::quantized_vector<T> p;
    gc::compress(gc::exec::seq, c, x, p);
    CHECK(c.step == 6);
    T largest = T(0);
    for (const T v : x) largest = std::max(largest, std::fabs(v));
    CHECK(p.scale == largest);
    CHECK(p.dim == x.size());
    CHECK(p.level_bits <= 2);
    const gc::detail::counter_stream stream(3, 5);
    for (std::size_t i = 0; i < x.size(); ++i) {
      CAPTURE(i);
      REQUIRE(std::abs(p.levels[i]) <= 1);
      if (largest == T(0)) {
        CHECK(p.levels[i] == 0);
        continue;
      }
      // b_i = 1 exactly when the draw is below |x_i| / s (QSGD's stochastic rounding of r <= 1).
      const double r = std::fabs(static_cast<double>(x[i])) / static_cast<double>(largest);
      const bool up = r == 1.0 || stream.uniform(i) < r;
      CHECK(p.levels[i] == (up ? (x[i] < T(0) ? -1 : 1) : 0));
    }
    // The largest entries are always sent, zeros never.
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (largest > T(0) && std::fabs(x[i]) == largest) CHECK(std::abs(p.levels[i]) == 1);
      if (x[i] == T(0)) CHECK(p.levels[i] == 0);
    }
  }
}

TEST_CASE_TEMPLATE("terngrad: unbiased, with variance s ||x||_1 - ||x||^2 within omega = sqrt(d) - 1", T, float, double) {
  constexpr int draws = 4000;
  for (const gt::input_kind kind : {gt::input_kind::normal, gt::input_kind::heavy_tailed, gt::input_kind::with_zeros,
                                    gt::input_kind::ties}) {
    const std::string kind_name = gt::to_string(kind);
    CAPTURE(kind_name);
    const std::size_t d = 11;
    const std::vector<T> x = gt::make_input<T>(kind, d, 17);
    std::vector<long double> mean(d, 0);
    long double mean_sq_err = 0;
    gc::terngrad c{.seed = 99};
    gc::quantized_vector<T> p;
    for (int k = 0; k < draws; ++k) {
      gc::compress(gc::exec::seq, c, x, p);
      const std::vector<T> y = decoded<T>(p, d);
      for (std::size_t i = 0; i < d; ++i) mean[i] += y[i];
      mean_sq_err += gt::squared_distance<T>(x, y);
    }
    mean_sq_err /= draws;
    long double s = 0, l1 = 0, var_of_sq_err = 0;
    for (const T v : x) s = std::max(s, std::fabs(static_cast<long double>(v)));
    REQUIRE(s > 0);
    for (std::size_t i = 0; i < d; ++i) {
      CAPTURE(i);
      const long double a = std::fabs(static_cast<long double>(x[i])), q = a / s;
      const long double sigma = s * std::sqrt(q * (1 - q) / draws);
      CHECK(std::fabs(mean[i] / draws - static_cast<long double>(x[i])) <= 5 * sigma + 1e-6L * s);
      l1 += a;
      // The squared error (s - a)^2 or a^2 with probabilities q, 1 - q.
      const long double hi = (s - a) * (s - a), lo = a * a, m = q * hi + (1 - q) * lo;
      var_of_sq_err += q * (hi - m) * (hi - m) + (1 - q) * (lo - m) * (lo - m);
    }
    const long double norm2 = gt::squared_norm_ld<T>(x);
    const long double expected = s * l1 - norm2;
    CHECK(expected <= c.omega(d) * norm2 * (1 + 1e-9L));
    CHECK(std::fabs(mean_sq_err - expected) <= 5 * std::sqrt(var_of_sq_err / draws) + 1e-5L * norm2);
  }
  CHECK(gc::terngrad{}.omega(0) == 0.0);
  CHECK(gc::terngrad{}.omega(100) == doctest::Approx(9.0));
}

TEST_CASE_TEMPLATE("terngrad: NaN or Inf throws naming the first, payload and step unchanged", T, float, double) {
  const std::vector<T> good{T(1), T(-2), T(0.5)};
  gc::terngrad c{.seed = 1};
  gc::quantized_vector<T> p;
  gc::compress(gc::exec::seq, c, good, p);
  const auto before = p;
  for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()}) {
    std::vector<T> x{T(1), bad, T(3), bad};
    CHECK_THROWS_WITH_AS(gc::compress(gc::exec::seq, c, x, p), doctest::Contains("x[1]"), gc::error);
    CHECK(p == before);
    CHECK(c.step == 1);
  }
  // The extremes are fine: the scale is an entry, every level decodes to a finite value.
  const T big = std::numeric_limits<T>::max();
  std::vector<T> x{big, -big, std::numeric_limits<T>::denorm_min(), T(0)};
  gc::compress(gc::exec::seq, c, x, p);
  const std::vector<T> y = decoded<T>(p, x.size());
  CHECK(y[0] == big);
  CHECK(y[1] == -big);
  CHECK(y[3] == T(0));
  CHECK(gc::wire_bytes(p) == gc::detail::header_bytes + 8 + sizeof(T) + 1);  // 2 bits x 4
}

TEST_CASE_TEMPLATE("sign: +1 / -1 with scale 1, NaN and zeros as +1, empty input", T, float, double) {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  const std::vector<T> x{T(3), T(-0.25), T(0), -T(0), nan, -inf, inf, std::numeric_limits<T>::denorm_min(),
                         -std::numeric_limits<T>::denorm_min()};
  gc::sign_vector<T> p;
  gc::compress(gc::exec::seq, gc::sign{}, x, p);
  CHECK(p.dim == x.size());
  CHECK(p.scales == std::vector<T>{T(1)});
  CHECK(decoded<T>(p, x.size()) == std::vector<T>{1, -1, 1, 1, 1, -1, 1, 1, -1});
  CHECK(gc::wire_bytes(p) == gc::detail::header_bytes + 8 + sizeof(T) + 2);
  gc::compress(gc::exec::seq, gc::sign{}, std::vector<T>{}, p);
  CHECK(p.dim == 0);
  CHECK(p.scales.empty());
}

TEST_CASE_TEMPLATE("sign: a fixed scale (Signum's step size) is every element's magnitude, bad ones throw", T, float,
                   double) {
  const std::vector<T> x{T(3), T(-0.25), T(0), T(-7)};
  gc::sign_vector<T> p;
  gc::compress(gc::exec::seq, gc::sign{.scale = 0.001}, x, p);
  CHECK(p.scales == std::vector<T>{static_cast<T>(0.001)});
  const T s = static_cast<T>(0.001);
  CHECK(decoded<T>(p, x.size()) == std::vector<T>{s, -s, s, -s});
  const gc::sign_vector<T> before = p;
  for (const double bad : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(gc::compress(gc::exec::seq, gc::sign{.scale = bad}, x, p),
                         doctest::Contains("scale must be finite and > 0"), gc::error);
    CHECK(p == before);
  }
  if constexpr (std::is_same_v<T, float>) {  // finite as a double, but 0 or Inf as a float
    CHECK_THROWS_WITH_AS(gc::compress(gc::exec::seq, gc::sign{.scale = 1e-60}, x, p),
                         doctest::Contains("in the value type (got 1e-60)"), gc::error);
    CHECK_THROWS_WITH_AS(gc::compress(gc::exec::seq, gc::sign{.scale = 1e300}, x, p),
                         doctest::Contains("scale must be finite"), gc::error);
  }
}

TEST_CASE("sign: in none of the categories, as sign.hpp says") {
  // Not contractive for any delta > 0: a tiny vector's error is about d times its norm.
  const std::size_t d = 100;
  std::vector<double> x(d, 0.0);
  x[0] = 1e-3;
  gc::sign_vector<double> p;
  gc::compress(gc::exec::seq, gc::sign{}, x, p);
  CHECK(gt::squared_distance<double>(x, decoded<double>(p, d)) > (d - 1) * gt::squared_norm_ld<double>(x));
  // Not absolute: a large constant vector's error grows without bound.
  std::vector<double> big(d, 1e6);
  gc::compress(gc::exec::seq, gc::sign{}, big, p);
  CHECK(gt::squared_distance<double>(big, decoded<double>(p, d)) > 1e13);
}

TEST_CASE_TEMPLATE("momentum: u = g + beta u before the compressor, bit for bit as sgd's momentum", T, float, double) {
  const std::size_t d = 300;
  const T beta = static_cast<T>(0.9);
  gc::momentum<gc::identity, T> m(gc::identity{}, d, 0.9);
  CHECK(m.beta() == beta);
  std::vector<T> u(d, T(0));
  for (int step = 0; step < 5; ++step) {
    const std::vector<T> g = gt::make_input<T>(gt::all_input_kinds[static_cast<std::size_t>(step)], d, 40 + step);
    for (std::size_t i = 0; i < d; ++i) u[i] = beta * u[i] + g[i];
    const auto& msg = m.compress(gc::exec::seq, std::span<const T>(g));
    CHECK(gt::same_bits(msg.values, u));
    CHECK(gt::same_bits(std::vector<T>(m.velocity().begin(), m.velocity().end()), u));
    CHECK(&msg == &m.message());
  }
  m.reset();
  for (const T v : m.velocity()) CHECK(v == T(0));
}

TEST_CASE_TEMPLATE("momentum: the Nesterov form compresses g + beta u with the new u, as BytePS's decorator", T, float,
                   double) {
  const std::size_t d = 300;
  const T beta = static_cast<T>(0.9);
  gc::momentum<gc::identity, T> m(gc::identity{}, d, 0.9, gc::momentum_masking::none, gc::momentum_form::nesterov);
  CHECK(m.form() == gc::momentum_form::nesterov);
  std::vector<T> u(d, T(0)), p(d);
  for (int step = 0; step < 5; ++step) {
    const std::vector<T> g = gt::make_input<T>(gt::all_input_kinds[static_cast<std::size_t>(step)], d, 80 + step);
    for (std::size_t i = 0; i < d; ++i) {
      u[i] = beta * u[i] + g[i];  // m_t = mu m_(t-1) + g_t
      p[i] = beta * u[i] + g[i];  // p_t = mu m_t + g_t
    }
    const auto& msg = m.compress(gc::exec::seq, std::span<const T>(g));
    CHECK(gt::same_bits(msg.values, p));
    CHECK(gt::same_bits(std::vector<T>(m.velocity().begin(), m.velocity().end()), u));
  }
  // A look-ahead that overflows is rejected before anything changes.
  gc::momentum<gc::identity, T> big(gc::identity{}, 2, 0.5, gc::momentum_masking::none, gc::momentum_form::nesterov);
  const T huge = std::numeric_limits<T>::max() / T(1.2);  // u = huge, g + u / 2 = 1.25 max
  const std::vector<T> g{huge, T(1)};
  CHECK_THROWS_WITH_AS(big.compress(gc::exec::seq, std::span<const T>(g)),
                       doctest::Contains("Nesterov look-ahead g + beta * u is not finite at [0]"), gc::error);
  CHECK(big.velocity()[0] == T(0));
  CHECK(big.steps() == 0);
  CHECK_THROWS_WITH_AS((gc::momentum<gc::identity, T>(gc::identity{}, 2, 0.5, gc::momentum_masking::none,
                                                        static_cast<gc::momentum_form>(7))),
                       doctest::Contains("form 7 is not heavy_ball or nesterov"), gc::error);
}

TEST_CASE_TEMPLATE("momentum: Signum's messages equal sign of the damped momentum", T, float, double) {
  const std::size_t d = 257;
  gc::momentum<gc::sign, T> signum(gc::sign{}, d, 0.5);  // beta = 1/2: both recursions are exact
  std::vector<T> damped(d, T(0));
  for (int step = 0; step < 6; ++step) {
    const std::vector<T> g = gt::make_input<T>(gt::input_kind::integers, d, 70 + step);
    for (std::size_t i = 0; i < d; ++i) damped[i] = T(0.5) * damped[i] + T(0.5) * g[i];
    const auto& msg = signum.compress(gc::exec::seq, std::span<const T>(g));
    for (std::size_t i = 0; i < d; ++i) CHECK(msg.is_negative(i) == (damped[i] < T(0)));
  }
}

TEST_CASE_TEMPLATE("momentum: DGC's masking zeroes the velocity where the message was sent", T, float, double) {
  const std::size_t d = 200;
  using ef = gc::error_feedback<gc::top_k, T>;
  gc::momentum<ef, T> dgc(ef(gc::top_k{.k = 7}, d), d, 0.9, gc::momentum_masking::sent);
  gc::momentum<ef, T> plain(ef(gc::top_k{.k = 7}, d), d, 0.9);
  std::vector<T> u(d, T(0)), e(d, T(0));
  for (int step = 0; step < 4; ++step) {
    const std::vector<T> g = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 90 + step);
    for (std::size_t i = 0; i < d; ++i) u[i] = static_cast<T>(0.9) * u[i] + g[i];
    std::vector<T> v(d);
    for (std::size_t i = 0; i < d; ++i) v[i] = e[i] + u[i];  // momentum correction: e accumulates u
    const gc::sparse_vector<T> msg = dgc.compress(gc::exec::seq, std::span<const T>(g));
    gc::sparse_vector<T> expected;
    gc::compress(gc::exec::seq, gc::top_k{.k = 7}, v, expected);
    CHECK(msg == expected);
    for (std::size_t i = 0; i < d; ++i) e[i] = v[i];
    for (const auto i : msg.indices) {
      e[i] = T(0);
      u[i] = T(0);
    }
    CHECK(gt::same_bits(std::vector<T>(dgc.velocity().begin(), dgc.velocity().end()), u));
    CHECK(gt::same_bits(std::vector<T>(dgc.base().error().begin(), dgc.base().error().end()), e));
    plain.compress(gc::exec::seq, std::span<const T>(g));
  }
  // Without masking the sent coordinates keep their velocity.
  std::size_t nonzero = 0;
  for (const auto i : plain.message().indices) nonzero += plain.velocity()[i] != T(0);
  CHECK(nonzero > 0);
}

TEST_CASE_TEMPLATE("momentum: bad parameters and failed steps change nothing", T, float, double) {
  CHECK_THROWS_WITH_AS((gc::momentum<gc::sign, T>(gc::sign{}, 4, 1.0)), doctest::Contains("beta must be in [0, 1)"),
                       gc::error);
  CHECK_THROWS_WITH_AS((gc::momentum<gc::sign, T>(gc::sign{}, 4, -0.1)), doctest::Contains("beta"), gc::error);
  CHECK_THROWS_WITH_AS((gc::momentum<gc::sign, T>(gc::sign{}, 4, 0.5, gc::momentum_masking::sent)),
                       doctest::Contains("needs a payload with indices"), gc::error);
  const T big = std::numeric_limits<T>::max();
  gc::momentum<gc::terngrad, T> m(gc::terngrad{.seed = 2}, 3, 0.5);
  const std::vector<T> g{T(1), T(-1), big};
  m.compress(gc::exec::seq, std::span<const T>(g));
  const std::vector<T> velocity(m.velocity().begin(), m.velocity().end());
  const auto message = m.message();
  const std::uint64_t step = m.base().step;
  CHECK_THROWS_WITH_AS(m.compress(gc::exec::seq, std::span<const T>(std::vector<T>{T(1), T(2)})),
                       doctest::Contains("input size 2"), gc::error);
  CHECK_THROWS_WITH_AS(m.compress(gc::exec::seq, std::span<const T>(std::vector<T>{T(0), T(0), big})),
                       doctest::Contains("not finite at [2]"), gc::error);  // big + big / 2

  CHECK(gt::same_bits(std::vector<T>(m.velocity().begin(), m.velocity().end()), velocity));
  CHECK(m.message() == message);
  CHECK(m.base().step == step);
  // The compressor rejects the velocity (QSGD's scale ||u|| overflows): nothing changes either.
  gc::momentum<gc::qsgd, T> q(gc::qsgd{.s = 1, .seed = 4}, 3, 0.5);
  q.compress(gc::exec::seq, std::span<const T>(g));
  const std::vector<T> q_velocity(q.velocity().begin(), q.velocity().end());
  CHECK_THROWS_WITH_AS(q.compress(gc::exec::seq, std::span<const T>(std::vector<T>{big, big, T(0)})),
                       doctest::Contains("qsgd"), gc::error);
  CHECK(gt::same_bits(std::vector<T>(q.velocity().begin(), q.velocity().end()), q_velocity));
  CHECK(q.base().step == 1);
}

TEST_CASE_TEMPLATE("momentum: undo takes the last call back through every layer, once", T, float, double) {
  const std::size_t d = 150;
  using ef = gc::error_feedback<gc::top_k, T>;
  using dgc_t = gc::momentum<ef, T>;
  // error_feedback<momentum<error_feedback<top_k>>>: an outer scheme's undo reaches the inner residual.
  gc::error_feedback<dgc_t, T> outer(dgc_t(ef(gc::top_k{.k = 5}, d), d, 0.9, gc::momentum_masking::sent), d);
  const auto snapshot = [&] {
    std::vector<T> all(outer.error().begin(), outer.error().end());
    all.insert(all.end(), outer.base().velocity().begin(), outer.base().velocity().end());
    all.insert(all.end(), outer.base().base().error().begin(), outer.base().base().error().end());
    return all;
  };
  CHECK_FALSE(outer.can_undo());
  outer.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 5)));
  const std::vector<T> after_one = snapshot();
  const std::uint64_t steps = outer.base().steps();
  const auto inner_metrics = outer.base().base().metrics();
  outer.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::heavy_tailed, d, 6)));
  CHECK(outer.can_undo());
  outer.undo();
  CHECK(gt::same_bits(snapshot(), after_one));
  CHECK(outer.base().steps() == steps);
  CHECK(outer.base().base().metrics().steps == inner_metrics.steps);
  CHECK(outer.base().base().metrics().total_error == inner_metrics.total_error);
  CHECK_FALSE(outer.can_undo());
  CHECK_FALSE(outer.base().can_undo());
  CHECK_THROWS_WITH_AS(outer.undo(), doctest::Contains("no compress call to undo"), gc::error);
  CHECK_THROWS_WITH_AS(outer.base().undo(), doctest::Contains("momentum<error_feedback>: undo: there is no compress call"), gc::error);
  // A seeded compressor's step goes back with the velocity.
  gc::momentum<gc::terngrad, T> m(gc::terngrad{.seed = 3}, d, 0.5);
  m.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 7)));
  const std::vector<T> v1(m.velocity().begin(), m.velocity().end());
  m.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 8)));
  m.undo();
  CHECK(gt::same_bits(std::vector<T>(m.velocity().begin(), m.velocity().end()), v1));
  CHECK(m.base().step == 1);
  CHECK(m.steps() == 1);
  m.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 8)));
  m.reset();
  CHECK_FALSE(m.can_undo());
}

TEST_CASE_TEMPLATE("momentum: checkpoints hold the velocity and the wrapped state, and resume bit for bit", T, float,
                   double) {
  const std::size_t d = 64;
  using ef = gc::error_feedback<gc::top_k, T>;
  gc::momentum<ef, T> dgc(ef(gc::top_k{.k = 3}, d), d, 0.9, gc::momentum_masking::sent);
  gc::momentum<gc::terngrad, T> tern(gc::terngrad{.seed = 4}, d, 0.5);
  for (int step = 0; step < 3; ++step) {
    const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 10 + step);
    dgc.compress(gc::exec::seq, std::span<const T>(g));
    tern.compress(gc::exec::seq, std::span<const T>(g));
  }
  std::stringstream dgc_bytes, tern_bytes;
  dgc.save(dgc_bytes);
  tern.save(tern_bytes);
  gc::momentum<ef, T> dgc2(ef(gc::top_k{.k = 3}, d), d, 0.9, gc::momentum_masking::sent);
  gc::momentum<gc::terngrad, T> tern2(gc::terngrad{.seed = 4}, d, 0.5);
  dgc2.load(dgc_bytes);
  tern2.load(tern_bytes);
  CHECK(dgc2.steps() == 3);
  CHECK(tern2.base().step == 3);
  CHECK(gt::same_bits(dgc2.base().error(), dgc.base().error()));
  const std::vector<T> g = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 99);
  CHECK(dgc2.compress(gc::exec::seq, std::span<const T>(g)) == dgc.compress(gc::exec::seq, std::span<const T>(g)));
  CHECK(tern2.compress(gc::exec::seq, std::span<const T>(g)) == tern.compress(gc::exec::seq, std::span<const T>(g)));
  CHECK(gt::same_bits(dgc2.velocity(), dgc.velocity()));

  // Another wrapped compressor, another dimension, or a truncated stream: rejected, nothing changes.
  std::stringstream again;
  tern.save(again);
  const std::vector<T> velocity(dgc2.velocity().begin(), dgc2.velocity().end());
  CHECK_THROWS_WITH_AS(dgc2.load(again), doctest::Contains("compressor mismatch"), gc::error);
  gc::momentum<gc::terngrad, T> other_dim(gc::terngrad{}, d + 1, 0.5);
  std::stringstream again2;
  tern.save(again2);
  CHECK_THROWS_WITH_AS(other_dim.load(again2), doctest::Contains("dimension mismatch"), gc::error);
  std::stringstream full;
  dgc.save(full);
  std::stringstream truncated(full.str().substr(0, full.str().size() - 5));  // the inner checkpoint is cut
  CHECK_THROWS_AS(dgc2.load(truncated), gc::error);
  CHECK(gt::same_bits(std::vector<T>(dgc2.velocity().begin(), dgc2.velocity().end()), velocity));
  CHECK(dgc2.steps() == 4);
}

// ---- Random dithering (BytePS): the linear partition equals QSGD and TernGrad where it
// should, the natural partition follows its level rule element by element, both are unbiased
// within their omega, and every error leaves the payload and the step as they were.
static_assert(gc::unbiased_compressor<gc::dithering, float>);
static_assert(!gc::contractive_compressor<gc::dithering, double>);
static_assert(gc::seeded_compressor<gc::dithering>);
static_assert(std::is_same_v<gc::payload_t<gc::dithering, double>, gc::quantized_vector<double>>);
static_assert(gc::aggregation_of_v<gc::dithering> == gc::aggregation_class::gather);

namespace {

using part = gc::dithering::partition_kind;
using norm = gc::dithering::norm_kind;

template <class T>
std::vector<T> decoded_levels(const gc::quantized_vector<T>& p) {
  std::vector<T> dense(p.dim, T(0));
  gc::decompress_add(p, std::span<T>(dense));
  return dense;
}

/// The natural partition's level of r >= 0 with the draw u, written from the definition:
/// the neighbours of r in {0, 1, 2, 4, ...}, the upper one with probability (r - lo) / (hi - lo).
long double natural_reference(long double r, long double u) {
  long double lo = 0, hi = 1;
  while (r >= hi) {
    lo = hi;
    hi *= 2;
  }
  return u < (r - lo) / (hi - lo) ? hi : lo;
}

template <class T>
long double norm_of(const std::vector<T>& x, norm n) {
  long double m = 0, sq = 0;
  for (const T v : x) {
    m = std::max(m, std::fabs(static_cast<long double>(v)));
    sq += static_cast<long double>(v) * v;
  }
  return n == norm::max ? m : std::sqrt(sq);
}

}  // namespace

TEST_CASE_TEMPLATE("dithering: the linear partition with the l2 norm is QSGD, bit for bit", T, float, double) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    const std::string kind_name = gt::to_string(kind);
    CAPTURE(kind_name);
    for (const std::uint32_t s : {1u, 3u, 127u}) {
      CAPTURE(s);
      const std::vector<T> x = gt::make_input<T>(kind, 333, s);
      gc::dithering c{.s = s, .partition = gc::dithering::linear, .norm = gc::dithering::l2, .seed = 5, .step = 2};
      gc::qsgd q{.s = s, .seed = 5, .step = 2};
      gc::quantized_vector<T> a, b;
      for (int call = 0; call < 2; ++call) {
        gc::compress(gc::exec::seq, c, x, a);
        gc::compress(gc::exec::seq, q, x, b);
        CHECK(a == b);
        CHECK(c.step == q.step);
      }
      CHECK(c.omega(333) == q.omega(333));
    }
  }
}

TEST_CASE_TEMPLATE("dithering: the linear partition with the max norm and s = 1 is TernGrad, bit for bit", T, float,
                   double) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    const std::string kind_name = gt::to_string(kind);
    CAPTURE(kind_name);
    const std::vector<T> x = gt::make_input<T>(kind, 500, 7);
    gc::dithering c{.s = 1, .seed = 9};
    gc::terngrad t{.seed = 9};
    gc::quantized_vector<T> a, b;
    gc::compress(gc::exec::seq, c, x, a);
    gc::compress(gc::exec::seq, t, x, b);
    CHECK(a == b);
    CHECK(c.step == 1);
  }
}

TEST_CASE_TEMPLATE("dithering: each level follows its partition's rule with the element's draw", T, float, double) {
  for (const part p : {part::linear, part::natural}) {
    for (const norm n : {norm::max, norm::l2}) {
      for (const std::uint32_t s : {1u, 2u, 4u, 9u}) {
        for (const gt::input_kind kind : gt::all_input_kinds) {
          const std::string kind_name = gt::to_string(kind);
          CAPTURE(kind_name);
          CAPTURE(static_cast<int>(p));
          CAPTURE(static_cast<int>(n));
          CAPTURE(s);
          const std::vector<T> x = gt::make_input<T>(kind, 257, s + 11);
          gc::dithering c{.s = s, .partition = p, .norm = n, .seed = 21, .step = 4};
          gc::quantized_vector<T> out;
          gc::compress(gc::exec::seq, c, x, out);
          CHECK(c.step == 5);
          REQUIRE(out.dim == x.size());
          CHECK(out.coding == (p == part::natural ? gc::level_coding::power_of_two : gc::level_coding::linear));
          // scale = N / s or N 2^(1-s), rounded once to T (N held exactly in long double).
          const long double divisor = p == part::linear ? s : std::ldexp(1.0L, static_cast<int>(s) - 1);
          const long double big = norm_of(x, n);
          if (n == norm::max) CHECK(out.scale == static_cast<T>(static_cast<double>(big) / static_cast<double>(divisor)));
          else
            CHECK(std::fabs(static_cast<long double>(out.scale) - big / divisor) <=
                  4 * std::numeric_limits<T>::epsilon() * big / divisor + std::numeric_limits<T>::denorm_min());
          const gc::detail::counter_stream stream(21, 4);
          std::uint32_t coded_or = 0;
          for (std::size_t i = 0; i < x.size(); ++i) {
            CAPTURE(i);
            long double want = 0;
            if (out.scale > T(0)) {
              // r as the rule computes it, in double; the rest is exact in long double.
              const long double r = std::fabs(static_cast<double>(x[i])) / static_cast<double>(out.scale);
              const long double u = stream.uniform(i);
              want = p == part::linear ? (u < r - std::floor(r) ? std::floor(r) + 1 : std::floor(r))
                                       : natural_reference(r, u);
              if (x[i] < T(0)) want = -want;
            }
            CHECK(static_cast<long double>(out.levels[i]) == want);
            if (p == part::natural) {
              CHECK(gc::detail::is_power_of_two_level(out.levels[i]));
              CHECK(std::abs(out.levels[i]) <= (std::int32_t{1} << s));
            }
            coded_or |= gc::detail::level_code(out.levels[i], out.coding);
          }
          CHECK(out.level_bits == gc::detail::bits_to_hold(coded_or));
          CHECK(gc::decode<gc::quantized_vector<T>>(gc::encode(out)) == out);
        }
      }
    }
  }
}

TEST_CASE("dithering: a hand-computed natural message and its bytes") {
  // N = max |x| = 1, s = 3: scale 1/4, levels {0, 1, 2, 4}; r = 4, 1.2, 0.04, 0, 2.8, 0.8.
  const std::vector<float> x{1.0f, -0.3f, 0.01f, 0.0f, -0.7f, 0.2f};
  gc::dithering c{.s = 3, .partition = gc::dithering::natural, .seed = 4};
  gc::quantized_vector<float> p;
  gc::compress(gc::exec::seq, c, x, p);
  CHECK(p.scale == 0.25f);
  CHECK(p.levels[0] == 4);  // r = 4 is a level: no draw can move it
  CHECK(p.levels[3] == 0);
  CHECK((p.levels[1] == -1 || p.levels[1] == -2));
  CHECK((p.levels[2] == 0 || p.levels[2] == 1));
  CHECK((p.levels[4] == -2 || p.levels[4] == -4));
  CHECK((p.levels[5] == 0 || p.levels[5] == 1));
  // Codes are at most zigzag(3) = 6: 3 bits per element, 18 bits in 3 bytes.
  CHECK(p.level_bits == 3);
  CHECK(gc::wire_bytes(p) == gc::detail::header_bytes + 8 + sizeof(float) + 3);
}

TEST_CASE_TEMPLATE("dithering: unbiased, and the mean squared error is within omega", T, float, double) {
  constexpr int draws = 3000;
  for (const part p : {part::linear, part::natural}) {
    for (const norm n : {norm::max, norm::l2}) {
      for (const std::uint32_t s : {1u, 3u}) {
        for (const gt::input_kind kind : {gt::input_kind::normal, gt::input_kind::heavy_tailed, gt::input_kind::ties}) {
          const std::string kind_name = gt::to_string(kind);
          CAPTURE(kind_name);
          CAPTURE(static_cast<int>(p));
          CAPTURE(static_cast<int>(n));
          CAPTURE(s);
          const std::size_t d = 13;
          const std::vector<T> x = gt::make_input<T>(kind, d, 31 + s);
          gc::dithering c{.s = s, .partition = p, .norm = n, .seed = 77};
          gc::quantized_vector<T> out;
          std::vector<long double> sum(d, 0);
          long double sq_err = 0;
          long double expected_sq_err = 0;  // sum over i of the exact variance of element i
          long double largest_level_gap = 0;
          for (int k = 0; k < draws; ++k) {
            gc::compress(gc::exec::seq, c, x, out);
            const std::vector<T> y = decoded_levels(out);
            for (std::size_t i = 0; i < d; ++i) sum[i] += y[i];
            sq_err += gt::squared_distance<T>(x, y);
            if (k == 0) {
              for (std::size_t i = 0; i < d; ++i) {  // the two neighbouring values of x_i
                const long double sc = out.scale, a = std::fabs(static_cast<long double>(x[i]));
                const long double r = a / sc;
                long double lo, hi;
                if (p == part::linear) {
                  lo = std::floor(r);
                  hi = lo + 1;
                } else {
                  lo = 0;
                  hi = 1;
                  while (r >= hi) lo = hi, hi *= 2;
                }
                expected_sq_err += (a - lo * sc) * (hi * sc - a);
                largest_level_gap = std::max(largest_level_gap, (hi - lo) * sc);
              }
            }
          }
          const long double norm2 = gt::squared_norm_ld<T>(x);
          REQUIRE(norm2 > 0);
          for (std::size_t i = 0; i < d; ++i) {
            CAPTURE(i);
            // Each draw lies within one level gap of x_i, so its mean is within 5 sigma.
            CHECK(std::fabs(sum[i] / draws - static_cast<long double>(x[i])) <=
                  5 * largest_level_gap / 2 / std::sqrt(static_cast<long double>(draws)) + 1e-6L);
          }
          CHECK(expected_sq_err <= c.omega(d) * norm2 * (1 + 1e-9L));
          CHECK(std::fabs(sq_err / draws - expected_sq_err) <=
                5 * largest_level_gap * largest_level_gap / std::sqrt(static_cast<long double>(draws)) * d / 4 + 1e-6L);
        }
      }
    }
  }
}

TEST_CASE("dithering: omega for both partitions") {
  CHECK(gc::dithering{.s = 4}.omega(100) == doctest::Approx(std::min(100.0 / 16, 10.0 / 4)));
  const gc::dithering nat{.s = 4, .partition = gc::dithering::natural};
  // 1/8 + sqrt(d) 2^(1-s) min(1, sqrt(d) 2^(1-s)): d = 16 gives a = 0.5; d = 10000 gives a = 12.5.
  CHECK(nat.omega(16) == doctest::Approx(0.125 + 0.25));
  CHECK(nat.omega(10000) == doctest::Approx(0.125 + 12.5));
  CHECK(nat.omega(0) == 0.0);
  // The small elements are where the natural bound grows with d: many at half the lowest
  // nonzero level u (variance u^2 / 4 each) beside one at the top.
  const std::size_t d = 4096;
  std::vector<double> x(d, 0.5 * std::ldexp(1.0, 1 - 4));
  x[0] = 1.0;
  long double var = 0, norm2 = 0;
  const double u = std::ldexp(1.0, 1 - 4);
  for (const double v : x) {
    norm2 += v * v;
    var += v < u ? v * (u - v) : 0.0;
  }
  CHECK(var <= nat.omega(d) * norm2);
}

TEST_CASE_TEMPLATE("dithering: bad parameters, NaN, Inf and overflowing levels throw, changing nothing", T, float,
                   double) {
  const std::vector<T> good{T(1), T(-2), T(0.5)};
  for (const norm n : {norm::max, norm::l2}) {
    for (const part p : {part::linear, part::natural}) {
      CAPTURE(static_cast<int>(p));
      CAPTURE(static_cast<int>(n));
      gc::dithering c{.s = 2, .partition = p, .norm = n, .seed = 1};
      gc::quantized_vector<T> out;
      gc::compress(gc::exec::seq, c, good, out);
      const auto before = out;
      for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()}) {
        const std::vector<T> x{T(1), bad, T(3), bad};
        CHECK_THROWS_WITH_AS(gc::compress(gc::exec::seq, c, x, out), doctest::Contains("x[1]"), gc::error);
        CHECK(out == before);
        CHECK(c.step == 1);
      }
      // Near T's largest value the top levels would overflow: the max norm's scale is
      // max / 2, and the element at the max can only go to level 2, which is finite; but a
      // scale that rounds down can push r above s (linear) or 2^(s-1) (natural).
      const T big = std::numeric_limits<T>::max();
      const std::vector<T> extremes{big, -big, std::numeric_limits<T>::denorm_min(), T(0)};
      if (n == norm::max) {
        gc::compress(gc::exec::seq, c, extremes, out);
        const std::vector<T> y = decoded_levels(out);
        CHECK(y[0] == big);
        CHECK(y[1] == -big);
        CHECK(c.step == 2);
      } else {
        // ||x||_2 = sqrt(2) max overflows T for the scale / 2 of s = 2 in float; in double the
        // rescue finds it too: either way an error naming the overflow.
        CHECK_THROWS_WITH_AS(gc::compress(gc::exec::seq, c, extremes, out), doctest::Contains("overflows"), gc::error);
        CHECK(c.step == 1);
      }
    }
  }
  CHECK_THROWS_WITH_AS(gc::dithering{.s = 0}.validate(), doctest::Contains("must be >= 1"), gc::error);
  CHECK_THROWS_WITH_AS((gc::dithering{.s = 31, .partition = gc::dithering::natural}.validate()),
                       doctest::Contains("<= 30 for the natural partition"), gc::error);
  CHECK_NOTHROW((gc::dithering{.s = 30, .partition = gc::dithering::natural}.validate()));
  CHECK_THROWS_WITH_AS(gc::dithering{.s = (1u << 30) + 1}.validate(), doctest::Contains("<= 2^30"), gc::error);
  CHECK_THROWS_WITH_AS(gc::dithering{.partition = static_cast<part>(5)}.validate(), doctest::Contains("partition 5"),
                       gc::error);
  CHECK_THROWS_WITH_AS(gc::dithering{.norm = static_cast<norm>(9)}.validate(), doctest::Contains("norm 9"), gc::error);
  gc::dithering c{.s = 0};
  gc::quantized_vector<T> out;
  CHECK_THROWS_AS(gc::compress(gc::exec::seq, c, good, out), gc::error);
  CHECK(c.step == 0);
}

TEST_CASE_TEMPLATE("dithering: s = 30 natural levels reach 2^29 and encode in 6 bits", T, float, double) {
  std::vector<T> x(200);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(std::ldexp(1.0, -static_cast<int>(i % 40))) * (i % 3 ? 1 : -1);
  gc::dithering c{.s = 30, .partition = gc::dithering::natural, .seed = 3};
  gc::quantized_vector<T> out;
  gc::compress(gc::exec::seq, c, x, out);
  CHECK(out.levels[0] == -(1 << 29));  // x_0 = -1 = -N: the top level, 2^(s-1)
  CHECK(out.levels[1] == (1 << 28));   // 1/2 is a level too
  CHECK(out.level_bits == 6);          // codes up to zigzag(30) = 60
  const std::vector<T> y = decoded_levels(out);
  for (std::size_t i = 0; i < 30; ++i) CHECK(y[i] == x[i]);  // every power of two down to 2^-29 is exact
  CHECK(gc::decode<gc::quantized_vector<T>>(gc::encode(out)) == out);
}
