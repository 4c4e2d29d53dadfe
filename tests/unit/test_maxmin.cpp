// Unit tests for maxmin_quantizer (bucketed max-min stochastic quantization, as in CGX) and
// its payload's decoding rule.
//
// Every payload is checked against the definition written out here: per bucket the extremes
// by a plain loop, the unit as the smallest T with unit * L >= range (checked with long double
// products, exact for both value types, not with the library's fma test), and every level
// against element i's draw. Unbiasedness and the variance bound omega are checked
// statistically over fixed seed lists (5 sigma of the known distribution), and the exact
// expected variance of each payload against omega on random and adversarial inputs.
#include <doctest/doctest.h>

#include <gradcomp/gradcomp.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "error_message.hpp"
#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

using gt::contains;
using gt::error_message;

using gt::bits;



/// unit * top >= range, exactly: long double holds the product of a 53-bit and an 8-bit
/// integer mantissa exactly (64 bits), and a double range exactly.
template <class T>
bool covers_exactly(T unit, std::uint32_t top, double range) {
  return static_cast<long double>(unit) * static_cast<long double>(top) >= static_cast<long double>(range);
}

/// One bucket as the definition says, computed independently of the library.
template <class T>
struct expected_bucket {
  T lo, hi;      // extremes, zeros as +0
  double range;  // hi - lo in double
  T unit;        // smallest T with unit * L >= range
};

template <class T>
expected_bucket<T> brute_bucket(std::span<const T> b, std::uint32_t top) {
  T lo = b[0], hi = b[0];
  for (const T v : b) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (lo == T(0)) lo = T(0);
  if (hi == T(0)) hi = T(0);
  const double range = static_cast<double>(hi) - static_cast<double>(lo);
  T unit = T(0);
  if (range > 0) {
    // From a value an ulp or two away, walk down while the next lower value covers, then up
    // until this one does: the smallest covering T.
    unit = static_cast<T>(static_cast<long double>(range) / top);
    while (unit > T(0) && covers_exactly(std::nextafter(unit, T(0)), top, range)) unit = std::nextafter(unit, T(0));
    while (!covers_exactly(unit, top, range)) unit = std::nextafter(unit, std::numeric_limits<T>::infinity());
  }
  return {lo, hi, range, unit};
}

/// Checks every field of p against the definition for x and c (whose step was `step`).
template <class T>
void check_definition(const std::vector<T>& x, const gc::maxmin_quantizer& c, std::uint64_t step,
                      const gc::bucket_quantized_vector<T>& p) {
  const std::size_t d = x.size(), B = c.bucket_size;
  const std::uint32_t top = (1u << c.bits) - 1;
  REQUIRE(p.dim == d);
  CHECK(p.bucket_size == B);
  CHECK(p.bits == c.bits);
  const std::size_t nb = d == 0 ? 0 : (d + B - 1) / B;
  REQUIRE(p.mins.size() == nb);
  REQUIRE(p.units.size() == nb);
  REQUIRE(p.levels.size() == d);
  const gc::detail::counter_stream stream(c.seed, step);
  std::size_t bad_bucket = nb, bad_level = d;
  for (std::size_t b = 0; b < nb; ++b) {
    const std::size_t first = b * B, n = std::min(B, d - first);
    const auto want = brute_bucket(std::span<const T>(x.data() + first, n), top);
    if (bits(p.mins[b]) != bits(want.lo) || bits(p.units[b]) != bits(want.unit)) bad_bucket = std::min(bad_bucket, b);
    for (std::size_t i = first; i < first + n; ++i) {
      std::uint32_t level = 0;
      if (want.unit > T(0)) {
        const double r = (static_cast<double>(x[i]) - static_cast<double>(want.lo)) / static_cast<double>(want.unit);
        const double fl = std::floor(r);
        level = static_cast<std::uint32_t>(fl) + (stream.uniform(i) < r - fl ? 1u : 0u);
      }
      if (p.levels[i] != level || level > top) bad_level = std::min(bad_level, i);
    }
  }
  CAPTURE(bad_bucket);
  CAPTURE(bad_level);
  CHECK(bad_bucket == nb);
  CHECK(bad_level == d);
  // Decoding is min + unit * level, rounded twice in T.
  const auto dec = gt::densify<T>(p, d);
  bool decode_ok = true;
  for (std::size_t i = 0; i < d && decode_ok; ++i) {
    const T prod = p.units[i / B] * static_cast<T>(p.levels[i]);
    const T value = p.mins[i / B] + prod;
    decode_ok = bits(dec[i]) == bits(T(T(0) + T(1) * value)) && std::isfinite(dec[i]);
  }
  CHECK(decode_ok);
}

/// The exact expected squared error of the payload's draw, sum_i unit^2 f_i (1 - f_i) with f_i
/// the fractional part of (x_i - min) / unit, and the slack its subnormal units add to omega:
/// per bucket with a subnormal unit, n_b (unit^2 - (range / L)^2) / 4.
template <class T>
void expected_variance(const std::vector<T>& x, const gc::bucket_quantized_vector<T>& p, long double& var,
                       long double& subnormal_slack) {
  var = 0;
  subnormal_slack = 0;
  const std::uint32_t top = (1u << p.bits) - 1;
  for (std::size_t b = 0; b < p.mins.size(); ++b) {
    const long double u = p.units[b];
    if (u == 0) continue;
    const std::size_t first = b * p.bucket_size, n = std::min(p.bucket_size, x.size() - first);
    long double hi = x[first];
    for (std::size_t i = first; i < first + n; ++i) {
      hi = std::max(hi, static_cast<long double>(x[i]));
      const long double r =
          (static_cast<long double>(x[i]) - static_cast<long double>(p.mins[b])) / u;
      const long double f = r - std::floor(r);
      var += u * u * f * (1 - f);
    }
    if (p.units[b] < std::numeric_limits<T>::min()) {
      const long double exact_unit = (hi - static_cast<long double>(p.mins[b])) / top;
      subnormal_slack += static_cast<long double>(n) * (u * u - exact_unit * exact_unit) / 4;
    }
  }
}

/// (-a, a, 0, ..., 0) in every bucket of B: every zero half-way between two grid points.
template <class T>
std::vector<T> half_way_input(std::size_t d, std::size_t B, T a) {
  std::vector<T> x(d, T(0));
  for (std::size_t first = 0; first < d; first += B) {
    x[first] = -a;
    if (first + 1 < d) x[first + 1] = a;
  }
  return x;
}

}  // namespace

// =======================================================================================
// Compile-time facts.

static_assert(std::is_same_v<gc::payload_t<gc::maxmin_quantizer, float>, gc::bucket_quantized_vector<float>>);
static_assert(std::is_same_v<gc::payload_t<gc::maxmin_quantizer, double>, gc::bucket_quantized_vector<double>>);
static_assert(gc::unbiased_compressor<gc::maxmin_quantizer, float>);
static_assert(gc::unbiased_compressor<gc::maxmin_quantizer, double>);
static_assert(!gc::contractive_compressor<gc::maxmin_quantizer, float>);
static_assert(!gc::absolute_compressor<gc::maxmin_quantizer, double>);
static_assert(gc::seeded_compressor<gc::maxmin_quantizer>);
static_assert(gc::maxmin_quantizer::aggregation == gc::aggregation_class::gather);
static_assert(gc::maxmin_quantizer{}.bits == 8 && gc::maxmin_quantizer{}.bucket_size == 1024);

// =======================================================================================
// The definition.

TEST_CASE_TEMPLATE("maxmin: hand-computed payloads", T, float, double) {
  {
    // Buckets of 2 with 2 bits (L = 3): {1, 4}: min 1, range 3, unit 1, levels 0 and 3 exactly;
    // {-2, -2}: constant, unit 0; {5}: one element, unit 0.
    const std::vector<T> x{T(1), T(4), T(-2), T(-2), T(5)};
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
      gc::maxmin_quantizer c{.bits = 2, .bucket_size = 2, .seed = seed, .step = 4};
      gc::bucket_quantized_vector<T> p;
      gc::compress(gc::exec::seq, c, x, p);
      CHECK(c.step == 5);
      CHECK(p.dim == 5);
      CHECK(p.mins == std::vector<T>{T(1), T(-2), T(5)});
      CHECK(p.units == std::vector<T>{T(1), T(0), T(0)});
      CHECK(p.levels == std::vector<std::uint8_t>{0, 3, 0, 0, 0});
      CHECK(gt::densify<T>(p, 5) == x);
    }
  }
  {
    // One bucket {0, 0.5, 3}, L = 3: unit 1; 0.5 goes to level 1 exactly when its draw is < 0.5.
    const std::vector<T> x{T(0), T(0.5), T(3)};
    int ups = 0;
    for (std::uint64_t seed = 0; seed < 64; ++seed) {
      gc::maxmin_quantizer c{.bits = 2, .bucket_size = 3, .seed = seed};
      gc::bucket_quantized_vector<T> p;
      gc::compress(gc::exec::seq, c, x, p);
      const bool up = gc::detail::counter_stream(seed, 0).uniform(1) < 0.5;
      CHECK(p.levels == std::vector<std::uint8_t>{0, static_cast<std::uint8_t>(up ? 1 : 0), 3});
      ups += up;
    }
    CHECK(ups > 10);  // both outcomes occur
    CHECK(ups < 54);
  }
  {
    // -0 and +0: the min is stored as +0; the bucket is constant.
    const std::vector<T> x{-T(0), T(0), -T(0)};
    gc::maxmin_quantizer c{.bits = 3, .bucket_size = 8};
    gc::bucket_quantized_vector<T> p;
    gc::compress(gc::exec::seq, c, x, p);
    REQUIRE(p.mins.size() == 1);
    CHECK(bits(p.mins[0]) == bits(T(0)));
    CHECK(bits(p.units[0]) == bits(T(0)));
    CHECK(p.levels == std::vector<std::uint8_t>{0, 0, 0});
  }
  {
    // 1 bit on {0, 1}: unit 1, the levels are the values.
    const std::vector<T> x{T(1), T(0), T(0), T(1)};
    gc::maxmin_quantizer c{.bits = 1, .bucket_size = 4, .seed = 3};
    gc::bucket_quantized_vector<T> p;
    gc::compress(gc::exec::seq, c, x, p);
    CHECK(p.units == std::vector<T>{T(1)});
    CHECK(p.levels == std::vector<std::uint8_t>{1, 0, 0, 1});
  }
  {
    // Range 1 with 8 bits: 1/255 is not a T; the unit is the smallest T above it.
    const std::vector<T> x{T(0), T(1)};
    gc::maxmin_quantizer c{.bits = 8};
    gc::bucket_quantized_vector<T> p;
    gc::compress(gc::exec::seq, c, x, p);
    const T u = p.units[0];
    CHECK(static_cast<long double>(u) * 255 > 1.0L);
    CHECK(static_cast<long double>(std::nextafter(u, T(0))) * 255 < 1.0L);
    CHECK(p.levels[0] == 0);
    CHECK(p.levels[1] == 255);  // 1 / u is just below 255 and rounds up with probability ~1
  }
  {
    // Empty input.
    const std::vector<T> x;
    gc::maxmin_quantizer c{.bits = 4, .bucket_size = 3};
    gc::bucket_quantized_vector<T> p;
    p.dim = 9;
    p.levels = {1, 2};
    gc::compress(gc::exec::seq, c, x, p);
    CHECK(p.dim == 0);
    CHECK(p.mins.empty());
    CHECK(p.units.empty());
    CHECK(p.levels.empty());
    CHECK(c.step == 1);
  }
}

TEST_CASE_TEMPLATE("maxmin: every payload follows the definition, levels from 0 to L", T, float, double) {
  gc::bucket_quantized_vector<T> reused;  // one payload reused across every case: no stale state may leak
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      for (const std::uint32_t b : {1u, 2u, 4u, 8u}) {
        for (const std::size_t B : {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{1024}, d + 1}) {
          const std::string kind_name = gt::to_string(kind);
          CAPTURE(kind_name);
          CAPTURE(d);
          CAPTURE(b);
          CAPTURE(B);
          const auto x = gt::make_input<T>(kind, d, 500 + d + b);
          gc::maxmin_quantizer c{.bits = b, .bucket_size = B, .seed = d * 31 + b, .step = 2};
          gc::compress(gc::exec::seq, c, x, reused);
          CHECK(c.step == 3);
          check_definition(x, c, 2, reused);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("maxmin: deterministic for (seed, step), the step advances", T, float, double) {
  const auto x = gt::make_input<T>(gt::input_kind::normal, 3000, 51);
  gc::maxmin_quantizer a{.bits = 4, .bucket_size = 100, .seed = 77, .step = 5};
  gc::maxmin_quantizer b = a;
  gc::bucket_quantized_vector<T> pa, pb, pa2;
  gc::compress(gc::exec::seq, a, x, pa);
  gc::compress(gc::exec::seq, b, x, pb);
  CHECK(pa == pb);
  CHECK(a.step == 6);
  gc::compress(gc::exec::seq, a, x, pa2);
  CHECK(a.step == 7);
  CHECK(pa2.levels != pa.levels);  // new draws
  CHECK(pa2.mins == pa.mins);
  CHECK(pa2.units == pa.units);
  gc::maxmin_quantizer c{.bits = 4, .bucket_size = 100, .seed = 77, .step = 6};
  gc::bucket_quantized_vector<T> pc;
  gc::compress(gc::exec::seq, c, x, pc);
  CHECK(pc == pa2);
  gc::maxmin_quantizer e{.bits = 4, .bucket_size = 100, .seed = 78, .step = 5};
  gc::bucket_quantized_vector<T> pe;
  gc::compress(gc::exec::seq, e, x, pe);
  CHECK(pe.levels != pa.levels);
}

// =======================================================================================
// Unbiasedness and variance.

TEST_CASE_TEMPLATE("maxmin: unbiased per element, with variance within omega", T, float, double) {
  struct input_case {
    gt::input_kind kind;
    std::size_t d;
    std::size_t B;
  };
  const input_case inputs[] = {{gt::input_kind::normal, 12, 5},     {gt::input_kind::heavy_tailed, 9, 1024},
                               {gt::input_kind::with_zeros, 10, 3}, {gt::input_kind::ties, 8, 4},
                               {gt::input_kind::all_equal, 16, 16}, {gt::input_kind::narrow_range, 6, 6},
                               {gt::input_kind::levels_256, 11, 7}};
  constexpr int draws = 3000;
  for (const auto& in : inputs) {
    for (const std::uint32_t b : {1u, 3u}) {
      const std::string kind_name = gt::to_string(in.kind);
      CAPTURE(kind_name);
      CAPTURE(in.d);
      CAPTURE(in.B);
      CAPTURE(b);
      const auto x = gt::make_input<T>(in.kind, in.d, 61);
      std::vector<long double> mean(in.d, 0);
      long double mean_sq_err = 0;
      gc::maxmin_quantizer c{.bits = b, .bucket_size = in.B, .seed = 4242};  // advances its step on every call
      gc::bucket_quantized_vector<T> p;
      for (int k = 0; k < draws; ++k) {
        gc::compress(gc::exec::seq, c, x, p);
        const auto dec = gt::densify<T>(p, in.d);
        for (std::size_t i = 0; i < in.d; ++i) mean[i] += dec[i];
        mean_sq_err += gt::squared_distance<T>(x, dec);
      }
      CHECK(c.step == static_cast<std::uint64_t>(draws));
      for (auto& m : mean) m /= draws;
      mean_sq_err /= draws;

      // Per element: E decode = x_i; the draw is Bernoulli(f) times unit, so the mean of
      // `draws` decodes has standard deviation unit sqrt(f (1 - f) / draws).
      long double expected_var = 0, var_of_sq_err = 0;
      const long double eps = std::numeric_limits<T>::epsilon();
      for (std::size_t i = 0; i < in.d; ++i) {
        CAPTURE(i);
        const std::size_t bk = i / in.B;
        const long double u = p.units[bk];
        const long double r = u == 0 ? 0 : (static_cast<long double>(x[i]) - p.mins[bk]) / u;
        const long double f = r - std::floor(r);
        const long double sigma = u * std::sqrt(f * (1 - f) / draws);
        const long double slack = 4 * eps * (std::fabs(static_cast<long double>(x[i])) + std::fabs(p.mins[bk]) + u);
        CHECK(std::fabs(mean[i] - static_cast<long double>(x[i])) <= 5 * sigma + slack);
        expected_var += u * u * f * (1 - f);
        var_of_sq_err += u * u * u * u * f * (1 - f) * (1 - 2 * f) * (1 - 2 * f);
      }
      const long double norm2 = gt::squared_norm_ld<T>(x);
      const long double omega = c.omega(in.d);
      const long double sigma_sq_err = std::sqrt(var_of_sq_err / draws);
      const long double tiny = (std::is_same_v<T, float> ? 1e-5L : 1e-12L) * norm2;
      CAPTURE(static_cast<double>(mean_sq_err));
      CAPTURE(static_cast<double>(expected_var));
      CAPTURE(static_cast<double>(omega * norm2));
      CHECK(expected_var <= omega * norm2);
      CHECK(mean_sq_err <= omega * norm2 + 5 * sigma_sq_err + tiny);
      CHECK(std::fabs(mean_sq_err - expected_var) <= 5 * sigma_sq_err + tiny);
    }
  }
}

TEST_CASE_TEMPLATE("maxmin: the exact expected variance is within omega on random and adversarial inputs", T, float,
                   double) {
  // Without the rounding factor, the bound min(B, d) / (2 L^2) ||x||^2 alone: does any input
  // need the factor? (The header comment says not for buckets of at most 2^22 elements.)
  long double worst_ratio = 0;  // expected variance / omega ||x||^2
  bool needs_factor = false;
  const auto check = [&](const std::vector<T>& x, const gc::maxmin_quantizer& c) {
    gc::maxmin_quantizer run = c;
    gc::bucket_quantized_vector<T> p;
    gc::compress(gc::exec::seq, run, x, p);
    long double var = 0, slack = 0;
    expected_variance(x, p, var, slack);
    const long double norm2 = gt::squared_norm_ld<T>(x);
    const long double omega = c.omega(x.size());
    CHECK(var <= omega * norm2 + slack);
    const long double bare = omega / gc::maxmin_quantizer::unit_rounding_factor;
    if (var > bare * norm2 + slack) needs_factor = true;
    if (norm2 > 0 && slack == 0) worst_ratio = std::max(worst_ratio, var / (omega * norm2));
  };
  for (const std::uint32_t b : {1u, 2u, 5u, 8u}) {
    for (const std::size_t B : {std::size_t{2}, std::size_t{3}, std::size_t{7}, std::size_t{64}, std::size_t{1024}}) {
      CAPTURE(b);
      CAPTURE(B);
      const gc::maxmin_quantizer c{.bits = b, .bucket_size = B, .seed = B + b};
      for (const gt::input_kind kind : gt::all_input_kinds) {
        const std::string kind_name = gt::to_string(kind);
        CAPTURE(kind_name);
        for (const std::size_t d : {std::size_t{5}, std::size_t{100}, std::size_t{4097}})
          check(gt::make_input<T>(kind, d, 9 * d + B), c);
      }
      // The tight case, at several magnitudes (the unit's rounding differs with each), and
      // with the bucket's extremes at the ends of T's range.
      for (const T a : {T(1), T(0.3), T(1e-3), T(7e5), std::numeric_limits<T>::max() / T(4),
                        std::numeric_limits<T>::min() * T(1e6)}) {
        CAPTURE(a);
        check(half_way_input<T>(B * 3, B, a), c);
        check(half_way_input<T>(B * 3 + 1, B, a), c);  // and a last bucket of one element
      }
    }
  }
  CHECK_FALSE(needs_factor);
  // The bound is nearly attained: (B - 2) / B of it for the half-way input with B = 1024.
  CHECK(worst_ratio > 0.99L);
  CHECK(worst_ratio <= 1.0L);
}

TEST_CASE("maxmin: omega is min(B, d) / (2 L^2) times the rounding factor") {
  const double f = gc::maxmin_quantizer::unit_rounding_factor;
  CHECK(f > 1.0);
  CHECK(f < 1.0 + 1e-6);
  CHECK(gc::maxmin_quantizer{.bits = 8, .bucket_size = 1024}.omega(10) == 10.0 / (2.0 * 255 * 255) * f);
  CHECK(gc::maxmin_quantizer{.bits = 8, .bucket_size = 1024}.omega(5000) == 1024.0 / (2.0 * 255 * 255) * f);
  CHECK(gc::maxmin_quantizer{.bits = 1, .bucket_size = 4}.omega(100) == 4.0 / 2.0 * f);
  CHECK(gc::maxmin_quantizer{.bits = 4, .bucket_size = 1}.omega(3) == 1.0 / (2.0 * 15 * 15) * f);
  CHECK(gc::maxmin_quantizer{}.omega(0) == 0.0);
  // A bad parameter still gives a number, not UB.
  CHECK(gc::maxmin_quantizer{.bits = 0}.omega(3) >= 0.0);
  CHECK(std::isfinite(gc::maxmin_quantizer{.bits = 200}.omega(3)));
}

// =======================================================================================
// Errors: clear messages, nothing half-updated.

TEST_CASE_TEMPLATE("maxmin: bad parameters throw naming them and change nothing", T, float, double) {
  const auto x = gt::make_input<T>(gt::input_kind::normal, 20, 81);
  gc::bucket_quantized_vector<T> p;
  gc::maxmin_quantizer good{.bits = 4, .bucket_size = 8, .seed = 1};
  gc::compress(gc::exec::seq, good, x, p);
  const auto before = p;
  for (const std::uint32_t b : {0u, 9u, 32u, 255u}) {
    CAPTURE(b);
    gc::maxmin_quantizer bad{.bits = b, .bucket_size = 8, .step = 2};
    const std::string msg = error_message([&] { gc::compress(gc::exec::seq, bad, x, p); });
    CHECK(contains(msg, "gradcomp::maxmin_quantizer"));
    CHECK(contains(msg, "bits"));
    CHECK(contains(msg, "got " + std::to_string(b)));
    CHECK(p == before);
    CHECK(bad.step == 2);
  }
  gc::maxmin_quantizer bad{.bits = 8, .bucket_size = 0, .step = 2};
  const std::string msg = error_message([&] { gc::compress(gc::exec::seq, bad, x, p); });
  CHECK(contains(msg, "bucket_size"));
  CHECK(p == before);
  CHECK(bad.step == 2);
}

TEST_CASE_TEMPLATE("maxmin: non-finite input throws naming the first bad index and changes nothing", T, float,
                   double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for (const std::size_t d : {1u, 2u, 65u, 4097u}) {
    for (const T bad : {nan, inf, -inf}) {
      for (const std::size_t where : {std::size_t{0}, d / 2, d - 1}) {
        CAPTURE(d);
        CAPTURE(bad);
        CAPTURE(where);
        auto x = gt::make_input<T>(gt::input_kind::normal, d, 71 + where);
        gc::maxmin_quantizer c{.bits = 3, .bucket_size = 16, .seed = 5, .step = 8};
        gc::bucket_quantized_vector<T> p;
        gc::compress(gc::exec::seq, c, std::span<const T>(x.data(), std::min<std::size_t>(d, 3)), p);
        const auto before = p;
        const std::uint64_t step_before = c.step;
        x[where] = bad;
        if (where + 1 < d) x[d - 1] = -bad;  // a later one is not named
        const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
        CHECK(contains(msg, "gradcomp::maxmin_quantizer"));
        CHECK(contains(msg, "x[" + std::to_string(where) + "]"));
        CHECK(p == before);
        CHECK(c.step == step_before);
      }
    }
  }
}

TEST_CASE_TEMPLATE("maxmin: finite input near the largest value decodes finite or throws before writing", T, float,
                   double) {
  const T top = std::numeric_limits<T>::max();
  const auto rejected = [](const std::vector<T>& x, gc::maxmin_quantizer c, const std::string& bucket_words) {
    gc::bucket_quantized_vector<T> p;
    gc::maxmin_quantizer warm{.bits = 2, .bucket_size = 2};
    gc::compress(gc::exec::seq, warm, std::vector<T>{T(1), T(2), T(3)}, p);
    const auto before = p;
    const std::uint64_t step = c.step;
    const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
    CAPTURE(msg);
    CHECK(contains(msg, "gradcomp::maxmin_quantizer"));
    CHECK(contains(msg, bucket_words));
    CHECK(contains(msg, "overflows"));
    CHECK(p == before);
    CHECK(c.step == step);
  };
  const auto accepted = [](const std::vector<T>& x, gc::maxmin_quantizer c) {
    gc::bucket_quantized_vector<T> p;
    gc::compress(gc::exec::seq, c, x, p);
    const auto dec = gt::densify<T>(p, x.size());
    CHECK(std::all_of(dec.begin(), dec.end(), [](T v) { return std::isfinite(v); }));
    return dec;
  };
  // A range of 1.5 max(T): the top level's unit * L is beyond max(T) in T, whatever the bits.
  for (const std::uint32_t b : {1u, 4u, 8u}) {
    CAPTURE(b);
    rejected({T(0.75) * top, T(-0.75) * top}, gc::maxmin_quantizer{.bits = b, .seed = 1, .step = 3}, "bucket 0");
    rejected({top, -top}, gc::maxmin_quantizer{.bits = b, .step = 3}, "bucket 0");
    // The bad bucket is named, with its elements; the good one before it does not matter.
    rejected({T(1), T(2), -top, top, T(5)}, gc::maxmin_quantizer{.bits = b, .bucket_size = 2, .step = 1},
             "bucket 1 (x[2] to x[3])");
    // A range of 0.8 max(T) is fine: every level decodes finite.
    accepted({T(0.4) * top, T(-0.4) * top, T(0.1) * top, T(0)}, gc::maxmin_quantizer{.bits = b, .seed = 4});
  }
  // One bit on {max, 0}: unit = max exactly, levels exact.
  const auto dec = accepted({top, T(0), top}, gc::maxmin_quantizer{.bits = 1, .seed = 9});
  CHECK(dec == std::vector<T>{top, T(0), top});
  // Constant buckets at the extremes: unit 0, decode exact.
  CHECK(accepted({top, top, -top, -top}, gc::maxmin_quantizer{.bits = 8, .bucket_size = 2}) ==
        std::vector<T>{top, top, -top, -top});
}

TEST_CASE_TEMPLATE("maxmin: decode rule is min + unit * level with two roundings", T, float, double) {
  // 0.1 + 0.3 * 3 rounds twice in T; a fused multiply-add would round once.
  const T m = T(0.1), u = T(0.3);
  const T prod = u * T(3);
  CHECK(bits(gc::detail::maxmin_value(m, u, 3)) == bits(T(m + prod)));
  CHECK(gc::detail::maxmin_value(m, u, 0) == m);
  CHECK(gc::detail::top_level(1) == 1u);
  CHECK(gc::detail::top_level(8) == 255u);
  // Monotone in the level.
  for (std::uint32_t l = 0; l < 255; ++l) CHECK(gc::detail::maxmin_value(m, u, l) <= gc::detail::maxmin_value(m, u, l + 1));
}
