// DGC's pieces outside the compressor: local gradient clipping and the density warm-up.
// (Momentum correction and masking are in test_peer_quantizers.cpp, the sampled threshold
// in exec::par's Top-k.)
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <gradcomp/algorithms/clipping.hpp>
#include <gradcomp/algorithms/density_warmup.hpp>
#include <gradcomp/gradcomp.hpp>

#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

TEST_CASE_TEMPLATE("clip_to_norm: scales by max_norm / ||g|| only when the norm is larger", T, float, double) {
  std::vector<T> g{T(3), T(-4)};  // norm 5
  CHECK(gc::clip_to_norm(gc::exec::seq, std::span<T>(g), 10.0) == T(1));
  CHECK(g == std::vector<T>{T(3), T(-4)});
  CHECK(gc::clip_to_norm(gc::exec::seq, std::span<T>(g), 5.0) == T(1));
  CHECK(gc::clip_to_norm(gc::exec::seq, std::span<T>(g), 1.0) == T(0.2));
  CHECK(g == std::vector<T>{T(0.2) * T(3), T(0.2) * T(-4)});
  std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, 1000, 4);
  const long double before = std::sqrt(gt::squared_norm_ld<T>(x));
  const T factor = gc::clip_to_norm(gc::exec::seq, std::span<T>(x), 2.0);
  CHECK(static_cast<long double>(factor) == doctest::Approx(2.0L / before).epsilon(1e-6));
  CHECK(std::sqrt(gt::squared_norm_ld<T>(x)) == doctest::Approx(2.0).epsilon(1e-5));
}

TEST_CASE_TEMPLATE("clip_to_norm: bad max_norm and non-finite g throw and leave g as it was", T, float, double) {
  std::vector<T> g{T(1), std::numeric_limits<T>::quiet_NaN()};
  CHECK_THROWS_WITH_AS(gc::clip_to_norm(gc::exec::seq, std::span<T>(g), 1.0), doctest::Contains("not finite"),
                       gc::error);
  CHECK(g[0] == T(1));
  std::vector<T> ok{T(1)};
  for (const double bad : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()})
    CHECK_THROWS_WITH_AS(gc::clip_to_norm(gc::exec::seq, std::span<T>(ok), bad), doctest::Contains("max_norm"),
                         gc::error);
  CHECK(ok[0] == T(1));
}

TEST_CASE("local_clip_norm: the global threshold over sqrt(workers)") {
  CHECK(gc::local_clip_norm(4.0, 16) == 1.0);
  CHECK(gc::local_clip_norm(3.0, 1) == 3.0);
  CHECK_THROWS_WITH_AS(gc::local_clip_norm(1.0, 0), doctest::Contains("workers"), gc::error);
  CHECK_THROWS_WITH_AS(gc::local_clip_norm(-1.0, 2), doctest::Contains("max_norm"), gc::error);
}

TEST_CASE("density_warmup: DGC's sparsities 75%, 93.75%, 98.4375%, 99.6%, 99.9%, one stage per epoch") {
  const gc::density_warmup w{.initial = 0.25, .final = 0.001, .stage_steps = 100, .stages = 4};
  CHECK(w.density(0) == 0.25);
  CHECK(w.density(99) == 0.25);
  CHECK(w.density(100) == doctest::Approx(0.0628699).epsilon(1e-5));  // 0.25 * 0.004^(1/4) ~ 1 - 93.7%
  CHECK(w.density(250) == doctest::Approx(0.0158114).epsilon(1e-5));
  CHECK(w.density(300) == doctest::Approx(0.0039764).epsilon(1e-4));
  CHECK(w.density(400) == 0.001);
  CHECK(w.density(1u << 30) == 0.001);
  double previous = 1.0;
  for (std::uint64_t t = 0; t < 500; t += 7) {
    CHECK(w.density(t) <= previous);
    previous = w.density(t);
  }
  CHECK(w.k(0, 1000) == 250);
  CHECK(w.k(1000, 1000) == 1);
  CHECK(w.k(1000, 10) == 1);  // at least 1
  CHECK(w.k(0, 0) == 0);
  CHECK_THROWS_WITH_AS((gc::density_warmup{.initial = 0.5, .final = 0.0}).density(0), doctest::Contains("final"),
                       gc::error);
  CHECK_THROWS_WITH_AS((gc::density_warmup{.initial = 0.001, .final = 0.01}).density(0), doctest::Contains("initial"),
                       gc::error);
  CHECK_THROWS_WITH_AS((gc::density_warmup{.stage_steps = 0}).k(0, 5), doctest::Contains("stage_steps"), gc::error);
  // One stage: initial, then final.
  const gc::density_warmup one{.initial = 0.5, .final = 0.125, .stage_steps = 10, .stages = 1};
  CHECK(one.density(9) == 0.5);
  CHECK(one.density(10) == 0.125);
}
