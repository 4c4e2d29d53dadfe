// gc::bfloat16 and gc::float16: exact widening and round-to-nearest-even narrowing, checked
// against independent oracles: GCC's _Float16 (its conversions are IEEE's) for binary16, and
// a nearest-neighbour search in double for bfloat16.
#include <doctest/doctest.h>

#include <gradcomp/float16.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace gc = gradcomp;

namespace {

/// Floats worth converting: every exponent with edge mantissas, the halfway points of both
/// 16-bit formats, specials, and random bit patterns.
std::vector<float> probe_floats() {
  std::vector<float> out;
  for (std::uint32_t e = 0; e < 256; ++e)
    for (const std::uint32_t m : {0u, 1u, 0xfffu, 0x1000u, 0x1001u, 0x2000u, 0x7fffu, 0x8000u, 0x8001u, 0x18000u,
                                  0x7fffffu, 0x400000u, 0x3fffffu})
      for (const std::uint32_t s : {0u, 0x80000000u}) out.push_back(std::bit_cast<float>(s | (e << 23) | m));
  for (const float f : {65504.0f, 65519.0f, 65520.0f, 65536.0f, 6.0e-8f, 5.96046448e-8f, 2.98023224e-8f,
                        2.98023253e-8f, 6.10351562e-5f, 6.1035e-5f, 3.3895314e38f, 3.4028235e38f})
    for (const float sign : {1.0f, -1.0f}) out.push_back(sign * f);
  std::mt19937 rng(7);
  for (int i = 0; i < 400000; ++i) out.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(rng())));
  return out;
}

/// bfloat16 narrowing by its definition: of the two bfloat16 values around f (f's bits
/// truncated, and one ulp above), the nearer in exact arithmetic (double holds both
/// distances exactly), the even one on a tie. Past the largest finite value the upper
/// neighbour is Inf, at the distance the next binade's first value would have.
std::uint16_t nearest_bfloat16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const auto lo = static_cast<std::uint16_t>(u >> 16);
  if ((u & 0xffffu) == 0) return lo;
  const auto hi = static_cast<std::uint16_t>(lo + 1);
  const double x = std::fabs(static_cast<double>(f));
  const double a = std::fabs(static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(lo) << 16)));
  // The value above lo in magnitude: lo's magnitude plus one ulp of lo's binade, computed in
  // double so that the Inf neighbour has its ulp distance too.
  const int exponent = static_cast<int>((lo >> 7) & 0xff);
  const double ulp = std::ldexp(1.0, (exponent == 0 ? 1 : exponent) - 127 - 7);
  const double b = a + ulp;
  if (x - a < b - x) return lo;
  if (x - a > b - x) return hi;
  return (lo & 1) ? hi : lo;
}

}  // namespace

TEST_CASE("bfloat16: widening is the high half of a float, exactly, for all 65536 patterns") {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float f = gc::to_float(gc::bfloat16{static_cast<std::uint16_t>(b)});
    REQUIRE(std::bit_cast<std::uint32_t>(f) == b << 16);
    if (!std::isnan(f)) REQUIRE(gc::to_bfloat16(f).bits == b);  // and back
  }
}

TEST_CASE("bfloat16: narrowing rounds to nearest, ties to even, and NaN stays NaN") {
  for (const float f : probe_floats()) {
    CAPTURE(std::bit_cast<std::uint32_t>(f));
    const gc::bfloat16 h = gc::to_bfloat16(f);
    if (std::isnan(f)) {
      CHECK(std::isnan(gc::to_float(h)));
      CHECK((h.bits & 0x8000u) == ((std::bit_cast<std::uint32_t>(f) >> 16) & 0x8000u));  // sign kept
      continue;
    }
    REQUIRE(h.bits == nearest_bfloat16(f));
  }
  CHECK(std::isinf(gc::to_float(gc::to_bfloat16(std::numeric_limits<float>::max()))));  // past max + half ulp
  CHECK(gc::to_bfloat16(-0.0f).bits == 0x8000u);
}

#if defined(__FLT16_MANT_DIG__)
TEST_CASE("float16: widening matches _Float16 for all 65536 patterns") {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const float ours = gc::to_float(gc::float16{bits});
    const float theirs = static_cast<float>(std::bit_cast<_Float16>(bits));
    CAPTURE(b);
    if (std::isnan(theirs)) {
      REQUIRE(std::isnan(ours));
      REQUIRE((std::bit_cast<std::uint32_t>(ours) >> 31) == (b >> 15));
      REQUIRE(((std::bit_cast<std::uint32_t>(ours) >> 13) & 0x3ffu) == (b & 0x3ffu));  // payload kept
    } else {
      REQUIRE(std::bit_cast<std::uint32_t>(ours) == std::bit_cast<std::uint32_t>(theirs));
      REQUIRE(gc::to_float16(ours).bits == bits);  // and back
    }
  }
}

TEST_CASE("float16: narrowing matches _Float16 (round to nearest even, overflow, subnormals)") {
  for (const float f : probe_floats()) {
    CAPTURE(std::bit_cast<std::uint32_t>(f));
    const gc::float16 ours = gc::to_float16(f);
    const auto theirs = std::bit_cast<std::uint16_t>(static_cast<_Float16>(f));
    if (std::isnan(f)) {
      CHECK(std::isnan(gc::to_float(ours)));
      continue;
    }
    REQUIRE(ours.bits == theirs);
  }
}
#else
TEST_CASE("float16: the compiler has no _Float16 to compare with") {
  MESSAGE("no _Float16 on this compiler: the binary16 oracle tests did not run");
  CHECK(gc::to_float(gc::to_float16(65504.0f)) == 65504.0f);
}
#endif

TEST_CASE("float16 and bfloat16: constexpr, and to_half picks the format") {
  static_assert(gc::to_float(gc::float16{0x3c00}) == 1.0f);
  static_assert(gc::to_float(gc::bfloat16{0x3f80}) == 1.0f);
  static_assert(gc::to_half<gc::float16>(65520.0f).bits == 0x7c00);
  static_assert(gc::to_half<gc::bfloat16>(1.0f).bits == 0x3f80);
  static_assert(gc::half_precision<gc::float16> && gc::half_precision<gc::bfloat16> && !gc::half_precision<float>);
  static_assert(sizeof(gc::float16) == 2 && sizeof(gc::bfloat16) == 2);
  CHECK(gc::to_float(gc::to_float16(1e-8f)) == 0.0f);
}
