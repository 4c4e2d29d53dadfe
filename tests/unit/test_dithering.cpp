// Random dithering (BytePS): the linear partition equals QSGD and TernGrad where it should,
// the natural partition follows its level rule element by element, both are unbiased within
// their omega, and every error leaves the payload and the step as they were.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <gradcomp/gradcomp.hpp>

#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

static_assert(gc::unbiased_compressor<gc::dithering, float>);
static_assert(!gc::contractive_compressor<gc::dithering, double>);
static_assert(gc::seeded_compressor<gc::dithering>);
static_assert(std::is_same_v<gc::payload_t<gc::dithering, double>, gc::quantized_vector<double>>);
static_assert(gc::aggregation_of_v<gc::dithering> == gc::aggregation_class::gather);

namespace {

using part = gc::dithering::partition_kind;
using norm = gc::dithering::norm_kind;

template <class T>
std::vector<T> decoded(const gc::quantized_vector<T>& p) {
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
            const std::vector<T> y = decoded(out);
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
        const std::vector<T> y = decoded(out);
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
  const std::vector<T> y = decoded(out);
  for (std::size_t i = 0; i < 30; ++i) CHECK(y[i] == x[i]);  // every power of two down to 2^-29 is exact
  CHECK(gc::decode<gc::quantized_vector<T>>(gc::encode(out)) == out);
}
