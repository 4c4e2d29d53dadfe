// ef21<C>: EF21's recursion, its error metric, its checkpoint, and that a failed step
// changes nothing.
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

static_assert(gc::compressor<gc::ef21<gc::top_k, float>, float>);
static_assert(gc::aggregation_of_v<gc::ef21<gc::random_k, double>> == gc::aggregation_class::allreduce);

namespace {

template <class T>
std::vector<T> decoded(const auto& payload, std::size_t d) {
  std::vector<T> dense(d, T(0));
  gc::decompress_add(payload, std::span<T>(dense));
  return dense;
}

}  // namespace

TEST_CASE_TEMPLATE("ef21: m = C(scale g - h), h += decode(m), and the error is ||scale g - h||^2", T, float, double) {
  const std::size_t d = 120;
  const T scale = T(0.5);
  gc::ef21<gc::qsgd, T> ef(gc::qsgd{.s = 3, .seed = 7}, d);
  gc::qsgd mirror{.s = 3, .seed = 7};
  std::vector<T> h(d, T(0));
  double total = 0;
  for (int step = 0; step < 5; ++step) {
    CAPTURE(step);
    const std::vector<T> g = gt::make_input<T>(gt::all_input_kinds[static_cast<std::size_t>(step)], d, 30 + step);
    std::vector<T> p(d);
    for (std::size_t i = 0; i < d; ++i) p[i] = -h[i] + scale * g[i];
    gc::quantized_vector<T> expected;
    gc::compress(gc::exec::seq, mirror, p, expected);
    const auto& m = ef.compress(gc::exec::seq, std::span<const T>(g), scale);
    CHECK(m == expected);
    const std::vector<T> dec = decoded<T>(m, d);
    double err = 0;
    for (std::size_t i = 0; i < d; ++i) {
      const T left = p[i] - dec[i];
      err += static_cast<double>(left) * static_cast<double>(left);
      h[i] = h[i] + dec[i];
    }
    total += err;
    CHECK(gt::same_bits(ef.estimate(), h));
    CHECK(ef.metrics().steps == static_cast<std::uint64_t>(step + 1));
    CHECK(ef.metrics().total_error == doctest::Approx(total).epsilon(1e-9));
    CHECK(ef.base().step == mirror.step);
  }
  CHECK(ef.average_density() == 1.0);
}

TEST_CASE_TEMPLATE("ef21: with Top-k the estimate reaches a constant gradient exactly, then sends zeros", T, float,
                   double) {
  const std::size_t d = 100, k = 7;
  gc::ef21<gc::top_k, T> ef(gc::top_k{.k = k}, d);
  const std::vector<T> g = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 5);
  for (std::size_t step = 0; step < (d + k - 1) / k; ++step) ef.compress(gc::exec::seq, std::span<const T>(g));
  CHECK(gt::same_bits(ef.estimate(), g));
  const auto& m = ef.compress(gc::exec::seq, std::span<const T>(g));
  for (const T v : m.values) CHECK(v == T(0));
  CHECK(gt::same_bits(ef.estimate(), g));
  CHECK(ef.average_density() == doctest::Approx(static_cast<double>(k) / d));
}

TEST_CASE_TEMPLATE("ef21: failed steps change nothing, and the seeded step is restored", T, float, double) {
  const std::size_t d = 6;
  gc::ef21<gc::qsgd, T> ef(gc::qsgd{.s = 2, .seed = 1}, d);
  const std::vector<T> g{T(1), T(-2), T(3), T(0), T(0.5), T(-4)};
  ef.compress(gc::exec::seq, std::span<const T>(g));
  const std::vector<T> h = ef.estimate();
  const auto metrics = ef.metrics();
  const auto message = ef.message();
  const auto check_unchanged = [&] {
    CHECK(gt::same_bits(ef.estimate(), h));
    CHECK(ef.metrics().steps == metrics.steps);
    CHECK(ef.message() == message);
    CHECK(ef.base().step == 1);
  };
  CHECK_THROWS_WITH_AS(ef.compress(gc::exec::seq, std::span<const T>(std::vector<T>(5))),
                       doctest::Contains("ef21<qsgd>: input size 5"), gc::error);
  check_unchanged();
  std::vector<T> bad = g;
  bad[2] = std::numeric_limits<T>::quiet_NaN();
  CHECK_THROWS_WITH_AS(ef.compress(gc::exec::seq, std::span<const T>(bad)), doctest::Contains("x[2]"), gc::error);
  check_unchanged();
  CHECK_THROWS_WITH_AS(ef.compress(gc::exec::seq, std::span<const T>(g), std::numeric_limits<T>::infinity()),
                       doctest::Contains("scale must be finite"), gc::error);
  check_unchanged();
  // top_k keeps NaN in its message; EF21 still refuses the step.
  gc::ef21<gc::top_k, T> tk(gc::top_k{.k = 2}, d);
  CHECK_THROWS_WITH_AS(tk.compress(gc::exec::seq, std::span<const T>(bad)), doctest::Contains("x[2]"), gc::error);
  for (const T v : tk.estimate()) CHECK(v == T(0));
  CHECK(tk.metrics().steps == 0);
  // An estimate that would overflow.
  const T big = std::numeric_limits<T>::max();
  gc::ef21<gc::identity, T> id(gc::identity{}, 2);
  id.assign_estimate(std::vector<T>{-big, T(1)});
  CHECK_THROWS_WITH_AS(id.compress(gc::exec::seq, std::span<const T>(std::vector<T>{big, T(0)})),
                       doctest::Contains("overflows"), gc::error);
  CHECK(id.estimate() == std::vector<T>{-big, T(1)});
  CHECK_THROWS_WITH_AS(id.assign_estimate(std::vector<T>{T(1), std::numeric_limits<T>::infinity()}),
                       doctest::Contains("h[1]"), gc::error);
  CHECK_THROWS_WITH_AS(id.assign_estimate(std::vector<T>{T(1)}), doctest::Contains("got 1 values"), gc::error);
  CHECK(id.estimate() == std::vector<T>{-big, T(1)});
}

TEST_CASE_TEMPLATE("ef21: undo takes the last call back once, and error_feedback's undo reaches it", T, float, double) {
  const std::size_t d = 90;
  gc::ef21<gc::qsgd, T> ef(gc::qsgd{.s = 2, .seed = 5}, d);
  CHECK_FALSE(ef.can_undo());
  ef.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 1)), T(0.5));
  const std::vector<T> h1 = ef.estimate();
  const auto metrics1 = ef.metrics();
  ef.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 2)), T(0.5));
  REQUIRE(ef.can_undo());
  ef.undo();
  CHECK(gt::same_bits(ef.estimate(), h1));
  CHECK(ef.metrics().steps == metrics1.steps);
  CHECK(ef.metrics().total_error == metrics1.total_error);
  CHECK(ef.base().step == 1);
  CHECK_THROWS_WITH_AS(ef.undo(), doctest::Contains("ef21<qsgd>: undo: there is no compress call"), gc::error);
  // The call after an undo repeats the undone one bit for bit (the seeded draw included).
  ef.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 2)), T(0.5));
  gc::ef21<gc::qsgd, T> straight(gc::qsgd{.s = 2, .seed = 5}, d);
  straight.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 1)), T(0.5));
  straight.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 2)), T(0.5));
  CHECK(gt::same_bits(ef.estimate(), straight.estimate()));
  CHECK(ef.message() == straight.message());
  // assign_estimate and reset leave nothing to undo.
  ef.assign_estimate(std::span<const T>(h1));
  CHECK_FALSE(ef.can_undo());
  // Wrapped in error_feedback (as ef_sgd does), the outer undo takes the estimate back too.
  gc::error_feedback<gc::ef21<gc::top_k, T>, T> outer(gc::ef21<gc::top_k, T>(gc::top_k{.k = 4}, d), d);
  outer.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 3)));
  const std::vector<T> h_outer = outer.base().estimate();
  outer.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 4)));
  outer.undo();
  CHECK(gt::same_bits(outer.base().estimate(), h_outer));
  CHECK(outer.base().metrics().steps == 1);
}

TEST_CASE_TEMPLATE("ef21: checkpoints round-trip and do not load into error_feedback or back", T, float, double) {
  const std::size_t d = 50;
  gc::ef21<gc::random_k, T> ef(gc::random_k{.k = 5, .seed = 3}, d);
  for (int step = 0; step < 3; ++step)
    ef.compress(gc::exec::seq, std::span<const T>(gt::make_input<T>(gt::input_kind::normal, d, 60 + step)));
  std::stringstream bytes;
  ef.save(bytes);
  gc::ef21<gc::random_k, T> restored(gc::random_k{.k = 5, .seed = 3}, d);
  restored.load(bytes);
  CHECK(gt::same_bits(restored.estimate(), ef.estimate()));
  CHECK(restored.base().step == 3);
  CHECK(restored.metrics().total_error == ef.metrics().total_error);
  const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 99);
  CHECK(restored.compress(gc::exec::seq, std::span<const T>(g)) == ef.compress(gc::exec::seq, std::span<const T>(g)));

  std::stringstream ef21_bytes(bytes.str());
  gc::error_feedback<gc::random_k, T> classic(gc::random_k{.k = 5, .seed = 3}, d);
  CHECK_THROWS_WITH_AS(classic.load(ef21_bytes), doctest::Contains("compressor mismatch"), gc::error);
  std::stringstream classic_bytes;
  classic.save(classic_bytes);
  const std::vector<T> before = restored.estimate();
  CHECK_THROWS_WITH_AS(restored.load(classic_bytes), doctest::Contains("compressor mismatch"), gc::error);
  CHECK(gt::same_bits(restored.estimate(), before));
}
