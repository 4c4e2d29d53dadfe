// Unit tests for the float_code payload's compressors: float16_cast and bfloat16_cast (16-bit
// casts with a power-of-two pre-scale) and natural_compression (unbiased rounding to powers of
// two), and the element rules they share (detail/float_codes.hpp).
//
// The rounding is checked against a slow reference written here: the nearest value of the
// format found by a binary search over its codes, compared in long double (which holds every
// float and double times any power of two these tests use, and every midpoint of two adjacent
// 16-bit values), ties to the even code. Random compressors are checked per draw against their
// definition, and statistically over fixed seed lists with tolerances of 5 standard deviations
// of the known Bernoulli distributions.
#include <doctest/doctest.h>

#include <gradcomp/gradcomp.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
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

// ---------------------------------------------------------------------------------------
// The slow reference rounding.

struct format_shape {
  gc::code_format format;
  int exponent_bits;
  int mantissa_bits;
  int bias() const { return (1 << (exponent_bits - 1)) - 1; }
  unsigned inf_code() const { return ((1u << exponent_bits) - 1u) << mantissa_bits; }
  long double u() const { return std::ldexp(1.0L, -(mantissa_bits + 1)); }
  long double smallest_normal() const { return std::ldexp(1.0L, 1 - bias()); }
};
constexpr format_shape fp16{gc::code_format::float16, 5, 10};
constexpr format_shape bf16{gc::code_format::bfloat16, 8, 7};

/// The value of a positive finite code, from its fields.
long double ref_value(const format_shape& f, unsigned code) {
  const unsigned field = code >> f.mantissa_bits;
  const unsigned mantissa = code & ((1u << f.mantissa_bits) - 1u);
  if (field == 0) return std::ldexp(static_cast<long double>(mantissa), 1 - f.bias() - f.mantissa_bits);
  return std::ldexp(static_cast<long double>((1u << f.mantissa_bits) + mantissa),
                    static_cast<int>(field) - f.bias() - f.mantissa_bits);
}

/// The code nearest to v >= 0 (ties to the even code; the Inf code from the largest value plus
/// half an ulp up), by a search over the codes, which are ordered like their values.
std::uint16_t slow_round(const format_shape& f, long double v) {
  unsigned lo = 0, hi = f.inf_code() - 1;  // the largest code whose value is <= v
  while (lo < hi) {
    const unsigned mid = (lo + hi + 1) / 2;
    if (ref_value(f, mid) <= v)
      lo = mid;
    else
      hi = mid - 1;
  }
  const long double a = ref_value(f, lo);
  if (a == v) return static_cast<std::uint16_t>(lo);
  // The next value up; past the largest finite one, where the next binade would start.
  const long double b = lo + 1 == f.inf_code() ? std::ldexp(1.0L, f.bias() + 1) : ref_value(f, lo + 1);
  const long double middle = (a + b) / 2;  // exact in long double
  const unsigned code = v < middle ? lo : v > middle ? lo + 1 : ((lo & 1u) ? lo + 1 : lo);
  return static_cast<std::uint16_t>(code);
}

/// x * 2^e rounded to f by the slow reference, with x's sign.
template <class T>
std::uint16_t ref_round(const format_shape& f, T x, int e) {
  const std::uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
  return static_cast<std::uint16_t>(sign | slow_round(f, std::ldexp(std::fabs(static_cast<long double>(x)), e)));
}

/// What a code decodes to exactly: +-value * 2^-e.
long double ref_decoded(const format_shape& f, std::uint16_t code, int e) {
  const long double v = std::ldexp(ref_value(f, code & 0x7fffu), -e);
  return (code & 0x8000u) ? -v : v;
}

/// The pre-scale exponent by its definition: max * 2^e in [2^(emax - 1), 2^emax).
template <class T>
int ref_pre_scale(const format_shape& f, T max_abs) {
  if (max_abs == T(0)) return 0;
  int k = 0;
  (void)std::frexp(static_cast<long double>(max_abs), &k);  // max = m 2^k, m in [0.5, 1)
  return f.bias() - 1 - (k - 1);
}



/// A few floats around every midpoint of two adjacent positive 16-bit values of f (and of
/// the largest value and the Inf boundary), with both signs: every halfway case.
std::vector<float> halfway_floats(const format_shape& f) {
  std::vector<float> out;
  for (unsigned c = 0; c < f.inf_code(); ++c) {
    const long double a = ref_value(f, c);
    const long double b = c + 1 == f.inf_code() ? std::ldexp(1.0L, f.bias() + 1) : ref_value(f, c + 1);
    const auto middle = static_cast<float>((a + b) / 2);  // exact: one more significant bit
    REQUIRE(static_cast<long double>(middle) == (a + b) / 2);
    for (const float v : {middle, std::nextafter(middle, 0.0f), std::nextafter(middle, 1e38f)}) {
      out.push_back(v);
      out.push_back(-v);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Checks of one cast payload against the definition and the bounds.

template <class T>
void check_cast_payload(const format_shape& f, bool pre_scale, const std::vector<T>& x,
                        const gc::float_code_vector<T>& p) {
  const std::size_t d = x.size();
  REQUIRE(p.dim == d);
  REQUIRE(p.codes.size() == d);
  CHECK(p.format == f.format);
  T max_abs = T(0);
  for (const T v : x) max_abs = std::max(max_abs, std::fabs(v));
  const int e = pre_scale ? ref_pre_scale(f, max_abs) : 0;
  CHECK(p.scale_exponent == e);
  if (pre_scale && max_abs > T(0)) {
    const long double scaled = std::ldexp(static_cast<long double>(max_abs), e);
    CHECK(scaled >= std::ldexp(1.0L, f.bias() - 1));
    CHECK(scaled < std::ldexp(1.0L, f.bias()));
  }
  const std::vector<T> dec = gt::densify<T>(p, d);
  bool codes_ok = true, decode_exact = true, elementwise_ok = true, within_x = true;
  long double err2 = 0, norm2 = 0;
  for (std::size_t i = 0; i < d; ++i) {
    if (p.codes[i] != ref_round(f, x[i], e)) codes_ok = false;
    const long double exact = ref_decoded(f, p.codes[i], e);
    if (static_cast<long double>(dec[i]) != exact) decode_exact = false;
    const long double xi = x[i];
    const long double diff = std::fabs(static_cast<long double>(dec[i]) - xi);
    if (std::ldexp(std::fabs(xi), e) >= f.smallest_normal() && diff > f.u() * std::fabs(xi)) elementwise_ok = false;
    if (diff > std::fabs(xi)) within_x = false;
    err2 += diff * diff;
    norm2 += xi * xi;
  }
  CHECK_MESSAGE(codes_ok, "every code is x_i * 2^e rounded to nearest, ties to even");
  CHECK_MESSAGE(decode_exact, "decoding is exact: +-value(code) * 2^-e");
  CHECK_MESSAGE(elementwise_ok, "|C(x)_i - x_i| <= u |x_i| where x_i 2^e is in the normal range");
  CHECK_MESSAGE(within_x, "|C(x)_i - x_i| <= |x_i| everywhere");
  // The contraction, when its premise holds: the largest entry is in the normal range (always
  // with pre_scale). (1 - delta) ||x||^2 is computed in long double: allow its rounding.
  if (d > 0 && (pre_scale || static_cast<long double>(max_abs) >= f.smallest_normal())) {
    const double delta = (1.0 - static_cast<double>(f.u() * f.u())) / static_cast<double>(d);
    CHECK(err2 <= (1.0L - static_cast<long double>(delta)) * norm2 * (1.0L + 1e-15L));
  }
}

template <class T>
void check_cast(const format_shape& f, bool pre_scale, const std::vector<T>& x) {
  gc::float_code_vector<T> p;
  if (f.format == gc::code_format::float16) {
    gc::float16_cast c{.pre_scale = pre_scale};
    gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
  } else {
    gc::bfloat16_cast c{.pre_scale = pre_scale};
    gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
  }
  check_cast_payload(f, pre_scale, x, p);
}

/// Inputs that stress the casts: ties of the scaled format, zeros of both signs, denormals of
/// T, values above 65504, near max(T) (but below the overflowing tie), a huge dynamic range.
template <class T>
std::vector<std::vector<T>> adversarial_inputs(const format_shape& f) {
  std::vector<std::vector<T>> out;
  const T big = std::numeric_limits<T>::max();
  const T dm = std::numeric_limits<T>::denorm_min();
  // Exact midpoints of 16-bit values at scale 2^0 and at the scale pre_scale will pick (the
  // largest entry 1.5 * 2^(emax - 1) fixes e = 0, so these are ties when scaled).
  std::vector<T> ties{static_cast<T>(1.5L * std::ldexp(1.0L, f.bias() - 1))};
  for (unsigned c : {0u, 1u, 2u, 3u, 1023u, 1024u, 1025u, 0x3bffu, 0x3c00u, 0x3c01u, 0x5000u, 0x5001u})
    if (c + 1 < f.inf_code()) {
      ties.push_back(static_cast<T>((ref_value(f, c) + ref_value(f, c + 1)) / 2));
      ties.push_back(-static_cast<T>((ref_value(f, c) + ref_value(f, c + 1)) / 2));
    }
  out.push_back(ties);
  out.push_back({T(0), -T(0), T(0)});
  out.push_back({-T(0), T(1), -T(0), T(-2.5)});
  out.push_back({dm, -dm, T(3) * dm, T(1000) * dm, T(0)});  // only denormals of T: pre_scale makes them exact
  out.push_back({T(65504), T(65519.99), T(65520), T(70000), T(-1e5), T(0.001), T(3e-8)});
  out.push_back({big / T(3), T(1), -T(1e-20), std::numeric_limits<T>::min()});
  // The largest values that do not overflow: below the tie of max(T)'s top code and 2^(emax+1).
  const long double tie_of_top = std::ldexp(2.0L - std::ldexp(1.0L, -(f.mantissa_bits + 1)),
                                            std::numeric_limits<T>::max_exponent - 1);
  const T below_tie = std::nextafter(static_cast<T>(tie_of_top), T(0));
  out.push_back({below_tie, -below_tie, T(1), dm});
  out.push_back({T(1e30), T(1e-30), T(-3.75)});  // beyond float16's range at either end
  return out;
}

// ---------------------------------------------------------------------------------------
// natural compression by its definition.

/// The decoded value natural compression gives x with the draw u, computed in long double.
template <class T>
long double ref_natural(T x, double u) {
  const long double a = std::fabs(static_cast<long double>(x));
  if (a == 0) return static_cast<long double>(x);
  const long double lowest_normal = static_cast<long double>(std::numeric_limits<T>::min());
  long double low = 0, high = lowest_normal;  // subnormal: 0 or 2^emin
  if (a >= lowest_normal) {
    int k = 0;
    (void)std::frexp(a, &k);
    low = std::ldexp(1.0L, k - 1);
    high = 2 * low;
  }
  const long double fraction = (a - low) / (high - low);  // exact
  const long double v = static_cast<long double>(u) < fraction ? high : low;
  return std::signbit(x) ? -v : v;
}

/// Inputs for natural compression: normals with fractions 0, 1/3, 1/2 and random ones, both
/// signs, zeros, subnormals, the top binade's power of two.
template <class T>
std::vector<T> natural_inputs() {
  std::vector<T> x{T(0), -T(0), T(1), T(-2), T(0.75), T(1) + T(1) / T(3), T(-1.5), T(3), T(1e-3), T(-12345.678),
                   std::numeric_limits<T>::min(), std::numeric_limits<T>::denorm_min(),
                   -std::numeric_limits<T>::denorm_min() * T(7), std::numeric_limits<T>::min() / T(3),
                   std::ldexp(T(1), std::numeric_limits<T>::max_exponent - 1),
                   -std::ldexp(T(1), std::numeric_limits<T>::max_exponent - 1),
                   std::ldexp(T(1.999), std::numeric_limits<T>::max_exponent - 2)};
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int i = 0; i < 47; ++i) x.push_back(static_cast<T>(normal(rng) * std::pow(10.0, i % 7 - 3)));
  return x;
}

/// The two values natural compression chooses between for x (|x| = low (1 + f) for a
/// normal, low = 0 and high = 2^emin for a subnormal), and its variance gap^2 f (1 - f).
struct natural_choice {
  long double gap = 0, variance = 0;
};
template <class T>
natural_choice natural_spread(T x) {
  const long double a = std::fabs(static_cast<long double>(x));
  if (a == 0) return {};
  const long double low = std::fabs(ref_natural(x, 1.0));  // u = 1: never rounded up
  const long double high = std::fabs(ref_natural(x, 0.0));  // u = 0: up unless x is a power of two
  const long double gap = high - low;
  if (gap == 0) return {};  // a power of two: kept
  const long double f = (a - low) / gap;
  return {gap, gap * gap * f * (1 - f)};
}

}  // namespace

// =======================================================================================
// Compile-time facts.

static_assert(gc::contractive_compressor<gc::float16_cast, float>);
static_assert(gc::contractive_compressor<gc::bfloat16_cast, double>);
static_assert(!gc::unbiased_compressor<gc::float16_cast, float>);
static_assert(!gc::absolute_compressor<gc::bfloat16_cast, float>);
static_assert(!gc::seeded_compressor<gc::float16_cast>);
static_assert(gc::unbiased_compressor<gc::natural_compression, float>);
static_assert(gc::unbiased_compressor<gc::natural_compression, double>);
static_assert(!gc::contractive_compressor<gc::natural_compression, float>);
static_assert(gc::seeded_compressor<gc::natural_compression>);
static_assert(gc::payload<gc::float_code_vector<float>>);
static_assert(gc::payload<gc::float_code_vector<double>>);
static_assert(gc::float16_cast::name == "float16_cast");
static_assert(gc::bfloat16_cast::name == "bfloat16_cast");
static_assert(gc::aggregation_of_v<gc::float16_cast> == gc::aggregation_class::gather);
static_assert(gc::aggregation_of_v<gc::natural_compression> == gc::aggregation_class::gather);
static_assert(gc::detail::code_bits<float>(gc::code_format::power_of_two) == 9);
static_assert(gc::detail::code_bits<double>(gc::code_format::power_of_two) == 12);
static_assert(gc::detail::code_bits<double>(gc::code_format::float16) == 16);
static_assert(gc::float16_cast::relative_error_bound() == 0x1p-11);
static_assert(gc::bfloat16_cast::relative_error_bound() == 0x1p-8);

// =======================================================================================
// The rounding rule.

TEST_CASE("casts: float16 rounding of floats matches the slow reference on a dense sample and every halfway case") {
  std::vector<float> probes = halfway_floats(fp16);
  for (std::uint64_t u = 0; u < (std::uint64_t{1} << 32); u += 4099) {
    const float v = std::bit_cast<float>(static_cast<std::uint32_t>(u));
    if (std::isfinite(v)) probes.push_back(v);
  }
  std::size_t mismatches = 0, library_mismatches = 0;
  for (const float v : probes) {
    const std::uint16_t got = gc::detail::round_to_half(gc::code_format::float16, v, 0);
    if (got != ref_round(fp16, v, 0)) {
      if (mismatches++ == 0) CAPTURE(std::bit_cast<std::uint32_t>(v));
    }
    // And the independent narrowing of float16.hpp (checked against _Float16 in test_float16).
    if (got != gc::to_float16(v).bits) ++library_mismatches;
  }
  CHECK(probes.size() > 1'000'000);
  CHECK(mismatches == 0);
  CHECK(library_mismatches == 0);
}

TEST_CASE("casts: float16 rounding with a scale exponent rounds x * 2^e once") {
  const std::vector<float> halves = halfway_floats(fp16);
  std::mt19937 rng(3);
  std::size_t checked = 0, mismatches = 0;
  for (const int e : {-113, -40, -1, 1, 7, 40, 140, 163}) {
    CAPTURE(e);
    // The halfway cases moved by 2^-e (exact as long doubles; as floats where they fit).
    for (const float h : halves) {
      const long double moved = std::ldexp(static_cast<long double>(h), -e);
      const auto v = static_cast<float>(moved);
      if (static_cast<long double>(v) != moved || !std::isfinite(v)) continue;
      ++checked;
      if (gc::detail::round_to_half(gc::code_format::float16, v, e) != ref_round(fp16, v, e)) ++mismatches;
    }
    for (int i = 0; i < 20000; ++i) {
      const float v = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
      if (!std::isfinite(v)) continue;
      ++checked;
      if (gc::detail::round_to_half(gc::code_format::float16, v, e) != ref_round(fp16, v, e)) ++mismatches;
    }
  }
  CHECK(checked > 100'000);
  CHECK(mismatches == 0);
}

TEST_CASE("casts: bfloat16 rounding of floats matches to_bfloat16 and the slow reference") {
  std::vector<float> probes = halfway_floats(bf16);
  std::mt19937 rng(4);
  for (int i = 0; i < 200000; ++i) probes.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(rng())));
  std::size_t mismatches = 0;
  for (const float v : probes) {
    if (!std::isfinite(v)) continue;
    const std::uint16_t got = gc::detail::round_to_half(gc::code_format::bfloat16, v, 0);
    if (got != ref_round(bf16, v, 0) || got != gc::to_bfloat16(v).bits) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("casts: doubles are rounded to 16 bits directly, never through float") {
  for (const format_shape& f : {fp16, bf16}) {
    CAPTURE(static_cast<int>(f.format));
    std::size_t mismatches = 0, through_float_differs = 0, checked = 0;
    std::mt19937_64 rng(9);
    // Every halfway case of f, and a double ulp either side: float rounding would move the
    // neighbours onto the tie (that is double rounding), the direct rounding must not.
    for (unsigned c = 0; c + 1 < f.inf_code(); c += 1) {
      const long double middle = (ref_value(f, c) + ref_value(f, c + 1)) / 2;
      const auto m = static_cast<double>(middle);
      for (const double v : {m, std::nextafter(m, 0.0), std::nextafter(m, 1e300)}) {
        for (const int e : {0, -700, 900}) {
          const double x = std::ldexp(v, -e);
          if (x == 0 || !std::isfinite(x) || std::ldexp(x, e) != v) continue;
          ++checked;
          const std::uint16_t got = gc::detail::round_to_half(f.format, x, e);
          if (got != ref_round(f, x, e)) ++mismatches;
          if (e == 0 && got != gc::detail::round_to_half(f.format, static_cast<float>(x), 0)) ++through_float_differs;
        }
      }
    }
    for (int i = 0; i < 100000; ++i) {
      const double x = std::bit_cast<double>(rng());
      if (!std::isfinite(x)) continue;
      int k = 0;
      (void)std::frexp(x, &k);
      for (const int e : {0, 14 - (k - 1), 1 - (k - 1), -(k - 1)}) {  // scaled to the top, to 2, to 1
        ++checked;
        if (gc::detail::round_to_half(f.format, x, e) != ref_round(f, x, e)) ++mismatches;
      }
    }
    CHECK(checked > 100'000);
    CHECK(mismatches == 0);
    CHECK(through_float_differs > 0);  // the test can tell a double rounding apart
  }
}

TEST_CASE("casts: the pre-scale exponent puts max|x| in the format's second-highest binade for every exponent of T") {
  const auto check_all = [](auto zero) {
    using T = decltype(zero);
    for (const format_shape& f : {fp16, bf16}) {
      // Every binade of T (normal and subnormal), at both ends.
      for (T v = std::numeric_limits<T>::denorm_min(); std::isfinite(v); v = v * T(2)) {
        for (const T w : {v, std::nextafter(v * T(2), T(0))}) {
          if (!std::isfinite(w)) continue;
          const int e = gc::detail::pre_scale_exponent(f.format, w);
          CAPTURE(w);
          CHECK(e == ref_pre_scale(f, w));
          const auto range = gc::detail::scale_exponent_range<T>(f.format);
          CHECK(e >= range.lo);
          CHECK(e <= range.hi);
        }
      }
      CHECK(gc::detail::pre_scale_exponent(f.format, T(0)) == 0);
      CHECK(gc::detail::scale_exponent_range<T>(f.format).lo ==
            gc::detail::pre_scale_exponent(f.format, std::numeric_limits<T>::max()));
      CHECK(gc::detail::scale_exponent_range<T>(f.format).hi ==
            gc::detail::pre_scale_exponent(f.format, std::numeric_limits<T>::denorm_min()));
    }
  };
  check_all(0.0f);
  check_all(0.0);
  CHECK(gc::detail::scale_exponent_range<float>(gc::code_format::float16).lo == -113);
  CHECK(gc::detail::scale_exponent_range<float>(gc::code_format::float16).hi == 163);
  CHECK(gc::detail::scale_exponent_range<double>(gc::code_format::bfloat16).hi == 1200);
  CHECK(gc::detail::scale_exponent_range<double>(gc::code_format::power_of_two).lo == 0);
  CHECK(gc::detail::scale_exponent_range<double>(gc::code_format::power_of_two).hi == 0);
}

// =======================================================================================
// float16_cast and bfloat16_cast.

TEST_CASE_TEMPLATE("casts: codes, scale and both bounds on every input kind and size", T, float, double) {
  for (const format_shape& f : {fp16, bf16}) {
    for (const bool pre_scale : {true, false}) {
      for (const gt::input_kind kind : gt::all_input_kinds) {
        for (const std::size_t d : gt::edge_sizes) {
          const std::string kind_name = gt::to_string(kind);
          CAPTURE(static_cast<int>(f.format));
          CAPTURE(pre_scale);
          CAPTURE(kind_name);
          CAPTURE(d);
          check_cast(f, pre_scale, gt::make_input<T>(kind, d, 300 + d));
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("casts: adversarial inputs (ties, zeros, -0, denormals, above 65504, near max)", T, float, double) {
  for (const format_shape& f : {fp16, bf16}) {
    for (const auto& x : adversarial_inputs<T>(f)) {
      CAPTURE(static_cast<int>(f.format));
      CAPTURE(x.size());
      check_cast(f, true, x);
    }
  }
  // -0 stays -0, and an all-zero input has e = 0 and zero codes of the right signs.
  gc::float_code_vector<T> p;
  gc::float16_cast c;
  const std::vector<T> zeros{T(0), -T(0)};
  gc::compress(gc::exec::seq, c, std::span<const T>(zeros), p);
  CHECK(p.scale_exponent == 0);
  CHECK(p.codes == std::vector<std::uint16_t>{0x0000, 0x8000});
  const auto dec = gt::densify<T>(p, 2);
  CHECK(!std::signbit(p.value(0)));
  CHECK(std::signbit(p.value(1)));
  CHECK(dec[0] == T(0));
  // Denormals of T keep every bit under pre_scale (they have at most 11 significant bits).
  const T dm = std::numeric_limits<T>::denorm_min();
  const std::vector<T> tiny{dm, T(-1000) * dm, T(2047) * dm};
  gc::compress(gc::exec::seq, c, std::span<const T>(tiny), p);
  CHECK(gt::same_bits(gt::densify<T>(p, 3), tiny));
  // Above 65504: 70000 scaled by 2^-2 = 17500, exact in float16's 11 bits up to rounding.
  const std::vector<T> large{T(70000), T(-65520), T(1)};
  gc::compress(gc::exec::seq, c, std::span<const T>(large), p);
  CHECK(p.scale_exponent == -2);
  CHECK(p.value(0) == T(70016));  // 17500 -> 17504 (ulp 16 at 2^14), times 4
  CHECK(p.value(1) == T(-65536));  // -16380 is a tie at ulp 8: to the even 16384
}

TEST_CASE_TEMPLATE("casts: a huge d keeps both bounds", T, float, double) {
  const std::size_t d = std::size_t{1} << 20;
  std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 77);
  x[d / 2] = T(1e6);  // one entry far above 65504: pre_scale has to move everything down
  for (const format_shape& f : {fp16, bf16}) {
    gc::float_code_vector<T> p;
    if (f.format == gc::code_format::float16) {
      gc::float16_cast c;
      gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
    } else {
      gc::bfloat16_cast c;
      gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
    }
    const auto dec = gt::densify<T>(p, d);
    long double err2 = 0, norm2 = 0;
    bool elementwise_ok = true;
    for (std::size_t i = 0; i < d; ++i) {
      const long double xi = x[i], diff = std::fabs(static_cast<long double>(dec[i]) - xi);
      if (std::ldexp(std::fabs(xi), p.scale_exponent) >= f.smallest_normal() && diff > f.u() * std::fabs(xi))
        elementwise_ok = false;
      if (diff > std::fabs(xi)) elementwise_ok = false;
      err2 += diff * diff;
      norm2 += xi * xi;
    }
    CHECK(elementwise_ok);
    CHECK(err2 <= f.u() * f.u() * norm2);  // every entry is in the normal range here: the elementwise bound squared
    CHECK(err2 <= (1.0L - (1.0L - f.u() * f.u()) / static_cast<long double>(d)) * norm2);
  }
}

TEST_CASE_TEMPLATE("casts: near max(T) the call throws exactly when a code would decode to inf", T, float, double) {
  const T top = std::numeric_limits<T>::max();
  for (const format_shape& f : {fp16, bf16}) {
    CAPTURE(static_cast<int>(f.format));
    const long double tie_of_top = std::ldexp(2.0L - std::ldexp(1.0L, -(f.mantissa_bits + 1)),
                                              std::numeric_limits<T>::max_exponent - 1);
    const T tie = static_cast<T>(tie_of_top);
    REQUIRE(static_cast<long double>(tie) == tie_of_top);
    gc::float_code_vector<T> p;
    gc::compress(gc::exec::seq, gc::float16_cast{}, std::vector<T>{T(1)}, p);
    const auto before = p;
    for (const T bad : {top, -top, tie}) {
      const std::vector<T> x{T(1), T(-2), bad, bad};
      const std::string msg = error_message([&] {
        if (f.format == gc::code_format::float16)
          gc::compress(gc::exec::seq, gc::float16_cast{}, x, p);
        else
          gc::compress(gc::exec::seq, gc::bfloat16_cast{}, x, p);
      });
      CAPTURE(msg);
      CHECK(contains(msg, "x[2]"));
      CHECK(contains(msg, "overflows the value type"));
      CHECK(p == before);
    }
    // One below the tie rounds down to the largest code value: accepted (adversarial_inputs
    // checks its bounds).
    const std::vector<T> ok{std::nextafter(tie, T(0))};
    if (f.format == gc::code_format::float16)
      gc::compress(gc::exec::seq, gc::float16_cast{}, ok, p);
    else
      gc::compress(gc::exec::seq, gc::bfloat16_cast{}, ok, p);
    CHECK(std::isfinite(p.value(0)));
  }
}

TEST_CASE_TEMPLATE("casts: without pre_scale, a value that rounds to inf throws naming it and suggesting pre_scale", T,
                   float, double) {
  gc::float_code_vector<T> p;
  gc::float16_cast plain{.pre_scale = false};
  gc::compress(gc::exec::seq, plain, std::vector<T>{T(65519), T(-3)}, p);  // rounds to 65504: fine
  CHECK(p.scale_exponent == 0);
  CHECK(p.value(0) == T(65504));
  const auto before = p;
  const std::vector<T> x{T(1), T(-65520), T(1e6)};  // 65520 is the tie that rounds to Inf
  const std::string msg = error_message([&] { gc::compress(gc::exec::seq, plain, x, p); });
  CAPTURE(msg);
  CHECK(contains(msg, "gradcomp::float16_cast"));
  CHECK(contains(msg, "x[1] = -65520"));
  CHECK(contains(msg, "pre_scale = true"));
  CHECK(p == before);
  // The default (pre_scale) takes the same input.
  gc::compress(gc::exec::seq, gc::float16_cast{}, x, p);
  CHECK(p.scale_exponent == -5);  // 1e6 is in [2^19, 2^20)
  // bfloat16 without pre_scale covers float's range up to its own largest value.
  gc::bfloat16_cast plain_bf{.pre_scale = false};
  gc::compress(gc::exec::seq, plain_bf, std::vector<T>{T(1e38)}, p);
  CHECK(std::isfinite(p.value(0)));
}

TEST_CASE_TEMPLATE("casts: NaN or Inf input throws naming the first bad index and changes nothing", T, float, double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  gc::float_code_vector<T> p;
  gc::compress(gc::exec::seq, gc::bfloat16_cast{}, std::vector<T>{T(4), T(5)}, p);
  const auto before = p;
  for (const T bad : {nan, -nan, inf, -inf}) {
    const std::vector<T> x{T(1), T(2), bad, T(3), -bad};
    for (const bool pre_scale : {true, false}) {
      const std::string msg = error_message([&] { gc::compress(gc::exec::seq, gc::float16_cast{.pre_scale = pre_scale}, x, p); });
      CAPTURE(msg);
      CHECK(contains(msg, "x[2]"));
      CHECK(contains(msg, "not finite"));
      CHECK(p == before);
    }
  }
}

TEST_CASE("casts: delta is (1 - u^2) / d") {
  CHECK(gc::float16_cast{}.delta(1) == 1.0 - 0x1p-22);
  CHECK(gc::bfloat16_cast{}.delta(4) == (1.0 - 0x1p-16) / 4);
  CHECK(gc::float16_cast{.pre_scale = false}.delta(0) == 1.0);
}

// =======================================================================================
// natural_compression.

TEST_CASE_TEMPLATE("natural: every code is the definition's rounding with its draw", T, float, double) {
  gc::float_code_vector<T> reused;
  const auto check_one = [&](const std::vector<T>& x, std::uint64_t seed, std::uint64_t step) {
    gc::natural_compression c{.seed = seed, .step = step};
    gc::compress(gc::exec::seq, c, std::span<const T>(x), reused);
    CHECK(c.step == step + 1);
    REQUIRE(reused.dim == x.size());
    CHECK(reused.format == gc::code_format::power_of_two);
    CHECK(reused.scale_exponent == 0);
    const gc::detail::counter_stream stream(seed, step);
    const auto dec = gt::densify<T>(reused, x.size());
    bool ok = true;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const long double want = ref_natural(x[i], stream.uniform(i));
      if (static_cast<long double>(reused.value(i)) != want || std::signbit(reused.value(i)) != std::signbit(x[i]))
        ok = false;
      if (reused.codes[i] >= (1u << reused.code_bits())) ok = false;
      if (dec[i] != reused.value(i)) ok = false;
    }
    CHECK_MESSAGE(ok, "C(x)_i is 2^a or 2^(a+1) (0 or 2^emin for subnormals), up iff u_i < fraction");
  };
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      check_one(gt::make_input<T>(kind, d, 500 + d), d, 3);
    }
  }
  check_one(natural_inputs<T>(), 1, 0);
  // Zeros and powers of two are kept whatever the draw; the bit patterns are sign and exponent.
  const std::vector<T> exact{T(0), -T(0), T(1), T(-0.5), T(1024), std::numeric_limits<T>::min()};
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    gc::natural_compression c{.seed = seed};
    gc::compress(gc::exec::seq, c, std::span<const T>(exact), reused);
    CHECK(gt::same_bits(gt::densify<T>(reused, exact.size()), std::vector<T>{T(0), T(0), T(1), T(-0.5), T(1024), std::numeric_limits<T>::min()}));
    CHECK(std::signbit(reused.value(1)));
    constexpr unsigned e_bits = sizeof(T) == 4 ? 8 : 11;
    constexpr unsigned bias = sizeof(T) == 4 ? 127 : 1023;
    CHECK(reused.codes[0] == 0u);
    CHECK(reused.codes[1] == 1u << e_bits);
    CHECK(reused.codes[2] == bias);
    CHECK(reused.codes[3] == ((1u << e_bits) | (bias - 1)));
    CHECK(reused.codes[5] == 1u);
  }
}

TEST_CASE_TEMPLATE("natural: deterministic for (seed, step), and the step advances", T, float, double) {
  const auto x = gt::make_input<T>(gt::input_kind::heavy_tailed, 1000, 8);
  gc::natural_compression a{.seed = 4}, b{.seed = 4};
  gc::float_code_vector<T> pa, pb, pc;
  gc::compress(gc::exec::seq, a, x, pa);
  gc::compress(gc::exec::seq, b, x, pb);
  CHECK(pa == pb);
  gc::compress(gc::exec::seq, a, x, pc);  // step 1: other draws
  CHECK(a.step == 2);
  CHECK(pc != pa);
  gc::natural_compression other_seed{.seed = 5};
  gc::compress(gc::exec::seq, other_seed, x, pc);
  CHECK(pc != pa);
}

TEST_CASE_TEMPLATE("natural: unbiased element by element, with the exact variance", T, float, double) {
  const std::vector<T> x = natural_inputs<T>();
  const std::size_t d = x.size();
  constexpr int draws = 20000;
  std::vector<long double> mean(d, 0);
  long double mean_err2 = 0;
  gc::float_code_vector<T> p;
  for (int k = 0; k < draws; ++k) {
    gc::natural_compression c{.seed = static_cast<std::uint64_t>(k) * 7 + 1, .step = 11};
    gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
    const auto dec = gt::densify<T>(p, d);
    for (std::size_t i = 0; i < d; ++i) mean[i] += dec[i];
    mean_err2 += gt::squared_distance<T>(x, dec);
  }
  mean_err2 /= draws;
  long double expected_err2 = 0, sd_err2_sq = 0, norm2 = 0, subnormal_budget = 0;
  for (std::size_t i = 0; i < d; ++i) {
    CAPTURE(i);
    CAPTURE(static_cast<double>(x[i]));
    mean[i] /= draws;
    const auto spread = natural_spread(x[i]);
    const long double var = spread.variance;
    // 5 standard deviations of the mean of `draws` Bernoulli steps (0 for exact values).
    CHECK(std::fabs(mean[i] - static_cast<long double>(x[i])) <= 5 * std::sqrt(var / draws));
    expected_err2 += var;
    norm2 += static_cast<long double>(x[i]) * x[i];
    const long double a = std::fabs(static_cast<long double>(x[i]));
    if (a > 0 && a < static_cast<long double>(std::numeric_limits<T>::min()))
      subnormal_budget += std::ldexp(1.0L, 2 * (std::numeric_limits<T>::min_exponent - 1)) / 4;
    // Entry i's squared error is at most gap^2, so its variance is at most gap^2 * var.
    sd_err2_sq += spread.gap * spread.gap * var;
  }
  // The empirical mean squared error agrees with the exact variance (5 sigma), and the exact
  // variance is within omega = 1/8 of ||x||^2 plus the subnormals' allowance.
  CHECK(std::fabs(mean_err2 - expected_err2) <= 5 * std::sqrt(sd_err2_sq / draws));
  CHECK(expected_err2 <= norm2 / 8 + subnormal_budget);
  CHECK(gc::natural_compression{}.omega(d) == 0.125);
}

TEST_CASE_TEMPLATE("natural: omega = 1/8 is attained at fraction 1/3", T, float, double) {
  // x = 2^a (1 + 1/3) rounded to T: f (1 - f) / (1 + f)^2 is 1/8 at f = 1/3 exactly.
  std::vector<T> x;
  for (int a = -20; a <= 20; ++a) x.push_back(std::ldexp(T(4) / T(3), a));
  long double var = 0, norm2 = 0;
  for (const T v : x) {
    var += natural_spread(v).variance;
    norm2 += static_cast<long double>(v) * v;
  }
  CHECK(var <= norm2 / 8 * (1 + 1e-15L));  // (the long double rounding of the check)
  CHECK(var >= norm2 / 8 * (1 - 1e-6L));
}

TEST_CASE_TEMPLATE("natural: NaN, Inf and the top binade throw before writing, and the step stays", T, float, double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T top = std::numeric_limits<T>::max();
  gc::float_code_vector<T> p;
  gc::natural_compression warm;
  gc::compress(gc::exec::seq, warm, std::vector<T>{T(3)}, p);
  const auto before = p;
  for (const T bad : {nan, -nan, inf, -inf}) {
    gc::natural_compression c{.seed = 1, .step = 6};
    // A top-binade entry first, the non-finite one later: the non-finite one is named.
    const std::vector<T> x{T(1), top, bad, T(2)};
    const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
    CAPTURE(msg);
    CHECK(contains(msg, "gradcomp::natural_compression"));
    CHECK(contains(msg, "x[2]"));
    CHECK(c.step == 6);
    CHECK(p == before);
  }
  for (const T bad : {top, -top, std::nextafter(std::ldexp(T(1), std::numeric_limits<T>::max_exponent - 1), inf)}) {
    gc::natural_compression c{.step = 2};
    const std::vector<T> x{T(0.5), bad};
    const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
    CAPTURE(msg);
    CHECK(contains(msg, "x[1]"));
    CHECK(contains(msg, "overflows the value type"));
    CHECK(c.step == 2);
    CHECK(p == before);
  }
  // The top binade's power of two and the largest value below it are accepted.
  gc::natural_compression c;
  const T top_power = std::ldexp(T(1), std::numeric_limits<T>::max_exponent - 1);
  gc::compress(gc::exec::seq, c, std::vector<T>{top_power, -top_power, std::nextafter(top_power, T(0))}, p);
  CHECK(p.value(0) == top_power);
  CHECK(p.value(1) == -top_power);
  CHECK(std::isfinite(p.value(2)));
}

// =======================================================================================
// The payload's decoding of a code.

TEST_CASE_TEMPLATE("float_code_vector: decompress_add adds alpha times the exact value", T, float, double) {
  gc::float_code_vector<T> p;
  p.dim = 3;
  p.format = gc::code_format::float16;
  p.scale_exponent = 4;
  p.codes = {0x3c00, 0xc100, 0x0001};  // 1, -2.5, 2^-24; times 2^-4
  std::vector<T> dense{T(1), T(1), T(0)};
  gc::decompress_add(p, std::span<T>(dense), T(-2));
  CHECK(dense[0] == T(1) - T(2) / T(16));
  CHECK(dense[1] == T(1) + T(5) / T(16));
  CHECK(dense[2] == -std::ldexp(T(2), -28));
  p.scale_exponent = 100000;  // outside the range the compressors produce
  CHECK_THROWS_WITH_AS(gc::decompress_add(p, std::span<T>(dense)), doctest::Contains("scale_exponent"), gc::error);
  p.scale_exponent = 0;
  p.codes.pop_back();
  CHECK_THROWS_WITH_AS(gc::decompress_add(p, std::span<T>(dense)), doctest::Contains("codes for dim"), gc::error);
}
