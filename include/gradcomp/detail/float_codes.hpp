#pragma once
// The element rules of the float_code payload: how an element of T becomes the code of a small
// floating-point format (float16_cast, bfloat16_cast, natural_compression), and what a code
// decodes to. Each rule is written once, for the host and the device (GRADCOMP_HD): the
// sequential reference loops and the exec::par kernels call these functions and nothing else,
// so every back end gives the same bits.
//
// Everything is integer arithmetic on bit patterns except the decode, which is one ldexp: no
// rounding mode, no FMA contraction and no flush-to-zero setting can change a code.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "../float16.hpp"
#include "bits.hpp"
#include "host_device.hpp"

namespace gradcomp {

/// The small floating-point formats a float_code_vector carries (its wire format byte).
enum class code_format : std::uint8_t {
  float16 = 1,       // IEEE binary16: sign, 5 exponent bits, 10 mantissa bits (16 bits a code)
  bfloat16 = 2,      // bfloat16: sign, 8 exponent bits, 7 mantissa bits (16 bits a code)
  power_of_two = 3,  // the sign and exponent fields of T, mantissa dropped: +-2^a or +-0
                     // (9 bits a code for float, 12 for double)
};

namespace detail {

/// The IEEE layout of T (float or double).
template <class T>
struct ieee_layout {
  static constexpr int mantissa_bits = std::numeric_limits<T>::digits - 1;                  // 23, 52
  static constexpr int exponent_bits = static_cast<int>(sizeof(T)) * 8 - 1 - mantissa_bits;  // 8, 11
  static constexpr int bias = std::numeric_limits<T>::max_exponent - 1;                      // 127, 1023
  static constexpr int emax = bias;
  static constexpr int emin = 1 - bias;
  static constexpr int lowest_exponent = emin - mantissa_bits;  // of denorm_min: -149, -1074
};

/// The layout of a 16-bit format (float16 or bfloat16).
struct half_layout {
  int exponent_bits;
  int mantissa_bits;
  GRADCOMP_HD constexpr int bias() const noexcept { return (1 << (exponent_bits - 1)) - 1; }  // = emax
  GRADCOMP_HD constexpr int emin() const noexcept { return 1 - bias(); }
  GRADCOMP_HD constexpr std::uint16_t inf_code() const noexcept {
    return static_cast<std::uint16_t>(((1u << exponent_bits) - 1u) << mantissa_bits);
  }
};

GRADCOMP_HD constexpr half_layout layout_of(code_format f) noexcept {
  return f == code_format::float16 ? half_layout{5, 10} : half_layout{8, 7};
}

/// Bits of one code of format f for value type T on the wire.
template <class T>
GRADCOMP_HD constexpr unsigned code_bits(code_format f) noexcept {
  return f == code_format::power_of_two ? 1u + static_cast<unsigned>(ieee_layout<T>::exponent_bits) : 16u;
}

/// The unit roundoff u of a 16-bit format: round to nearest moves a value in its normal range
/// by at most u times the value (2^-11 for float16, 2^-8 for bfloat16).
GRADCOMP_HD constexpr double unit_roundoff(code_format f) noexcept {
  return f == code_format::float16 ? 0x1p-11 : 0x1p-8;
}

/// floor(log2 |x|) for finite nonzero x, subnormals included.
template <class T>
GRADCOMP_HD constexpr int floor_log2(T x) noexcept {
  using L = ieee_layout<T>;
  using U = uint_of<T>;
  const U u = std::bit_cast<U>(x);
  const int field = static_cast<int>((u >> L::mantissa_bits) & ((U{1} << L::exponent_bits) - 1));
  if (field != 0) return field - L::bias;
  const U mantissa = u & ((U{1} << L::mantissa_bits) - 1);
  return L::lowest_exponent + static_cast<int>(std::bit_width(mantissa)) - 1;
}

/// The pre-scale exponent e of a 16-bit format f for inputs whose largest magnitude is max_abs
/// (finite): max_abs * 2^e lies in [2^(emax-1), 2^emax), so the largest entry keeps the
/// format's full precision, rounds to at most 2^emax (finite: the format's largest value is
/// just below 2^(emax+1)), and the rest of the range is kept for the small entries. 0 when
/// max_abs is 0.
template <class T>
GRADCOMP_HD constexpr std::int32_t pre_scale_exponent(code_format f, T max_abs) noexcept {
  if (max_abs == T(0)) return 0;
  return layout_of(f).bias() - 1 - floor_log2(max_abs);
}

/// The scale exponents a compressor can produce for format f and value type T (the decoder
/// rejects the others): the pre-scale exponents of every positive finite max_abs, which
/// include 0, for the 16-bit formats; only 0 for power_of_two.
struct exponent_range {
  std::int32_t lo, hi;
};
template <class T>
GRADCOMP_HD constexpr exponent_range scale_exponent_range(code_format f) noexcept {
  if (f == code_format::power_of_two) return {0, 0};
  const int top = layout_of(f).bias() - 1;
  return {top - ieee_layout<T>::emax, top - ieee_layout<T>::lowest_exponent};
}

/// x * 2^e rounded to the 16-bit format f, to nearest with ties to even, in ONE rounding from
/// the exact product: T is float or double, and a double is rounded directly, never through
/// float (whose own rounding can move a value onto a tie of the 16-bit format, and then the
/// relative error bound u would no longer hold). Results from the largest finite value plus
/// half an ulp up are +-Inf; results below half the smallest subnormal are +-0; the sign is
/// always kept. x must be finite (callers reject NaN and Inf first); |e| below 2^20.
template <class T>
GRADCOMP_HD constexpr std::uint16_t round_to_half(code_format f, T x, int e) noexcept {
  using L = ieee_layout<T>;
  using U = uint_of<T>;
  const half_layout h = layout_of(f);
  const U u = std::bit_cast<U>(x);
  const auto sign = static_cast<std::uint16_t>((u >> (sizeof(T) * 8 - 1)) << 15);
  const int field = static_cast<int>((u >> L::mantissa_bits) & ((U{1} << L::exponent_bits) - 1));
  std::uint64_t significand = static_cast<std::uint64_t>(u & ((U{1} << L::mantissa_bits) - 1));
  if (field == 0 && significand == 0) return sign;  // +-0
  // |x| * 2^e = significand * 2^q exactly.
  int q = L::lowest_exponent;
  if (field != 0) {
    significand |= std::uint64_t{1} << L::mantissa_bits;
    q = field - L::bias - L::mantissa_bits;
  }
  q += e;
  const int lead = static_cast<int>(std::bit_width(significand)) - 1;
  const int exponent = lead + q;  // floor(log2 |x * 2^e|)
  if (exponent > h.bias()) return static_cast<std::uint16_t>(sign | h.inf_code());
  // The result's ulp: 2^(exponent - mantissa_bits) in the normal range, the subnormals' below it.
  const int ulp = (exponent < h.emin() ? h.emin() : exponent) - h.mantissa_bits;
  const int shift = ulp - q;  // bits of the significand below the result's ulp
  std::uint64_t r = 0;        // the result in ulps: < 2^(mantissa_bits + 1), or equal after a carry
  if (shift <= 0) {
    r = significand << -shift;  // exact
  } else if (shift <= lead + 1) {
    // Round half to even without a data-dependent branch: adding half - 1, plus one when the
    // kept part is odd, carries into the kept part exactly when the dropped part is above
    // half, or is half and the kept part odd.
    const std::uint64_t half = std::uint64_t{1} << (shift - 1);
    const std::uint64_t kept_is_odd = (significand >> shift) & 1;
    r = (significand + half - 1 + kept_is_odd) >> shift;
  }  // else |x * 2^e| < 2^(ulp - 1), below half the smallest step: r = 0
  if (exponent < h.emin()) return static_cast<std::uint16_t>(sign | r);  // r = 2^m is the smallest normal's code
  // Normal: the exponent field, plus r without its leading one; a carry (r = 2^(m+1)) moves
  // into the exponent field, and from the top binade it gives exactly the Inf code.
  const std::uint64_t code =
      (static_cast<std::uint64_t>(exponent + h.bias()) << h.mantissa_bits) + r - (std::uint64_t{1} << h.mantissa_bits);
  return static_cast<std::uint16_t>(sign | code);
}

/// Natural compression's element rule (Horvath et al. 2019) with the uniform draw u in [0, 1):
/// |x| in [2^a, 2^(a+1)) becomes 2^a or 2^(a+1), the upper one iff u < (|x| - 2^a) / 2^a; a
/// subnormal |x| becomes 0 or 2^emin (T's smallest normal), the upper one iff u < |x| / 2^emin.
/// Both fractions are the mantissa field over 2^M (M = 23 or 52), exact in double, so the
/// comparison is exact and P(upper) is the fraction itself: unbiased. Zeros and powers of two
/// are kept; the sign is kept. The result is the power_of_two code sign << E | exponent field
/// (E = 8 or 11 exponent bits): rounding up adds one to the exponent field. From T's top
/// binade that gives the Inf field, so callers reject such inputs first. x must be finite.
template <class T>
GRADCOMP_HD constexpr std::uint16_t natural_code(T x, double u) noexcept {
  using L = ieee_layout<T>;
  using U = uint_of<T>;
  const U bits = std::bit_cast<U>(x);
  const auto sign = static_cast<std::uint16_t>(bits >> (sizeof(T) * 8 - 1));
  const auto field = static_cast<std::uint16_t>((bits >> L::mantissa_bits) & ((U{1} << L::exponent_bits) - 1));
  const U mantissa = bits & ((U{1} << L::mantissa_bits) - 1);
  const double fraction = static_cast<double>(mantissa) / static_cast<double>(U{1} << L::mantissa_bits);
  const std::uint16_t up = u < fraction ? 1 : 0;
  return static_cast<std::uint16_t>((sign << L::exponent_bits) | (field + up));
}

/// True when natural compression may round x up to Inf: x is in T's top binade and not a
/// power of two (whatever the draw, this is decided by x alone).
template <class T>
GRADCOMP_HD constexpr bool natural_may_overflow(T x) noexcept {
  using L = ieee_layout<T>;
  using U = uint_of<T>;
  const U key = magnitude_key(x);
  const U top_binade = static_cast<U>((U{1} << L::exponent_bits) - 2) << L::mantissa_bits;
  return key > top_binade;  // (Inf and NaN too; callers check them first)
}

/// The value of a code, exactly, as a double (every value of the three formats is one).
template <class T>
GRADCOMP_HD constexpr double code_value(code_format f, std::uint16_t code) noexcept {
  if (f == code_format::float16) return static_cast<double>(to_float(gradcomp::float16{code}));
  if (f == code_format::bfloat16) return static_cast<double>(to_float(gradcomp::bfloat16{code}));
  using L = ieee_layout<T>;
  using U = uint_of<T>;
  const U sign = static_cast<U>(code >> L::exponent_bits) & 1u;
  const U field = static_cast<U>(code) & ((U{1} << L::exponent_bits) - 1);
  return static_cast<double>(
      std::bit_cast<T>(static_cast<U>((sign << (sizeof(T) * 8 - 1)) | (field << L::mantissa_bits))));
}

/// What element `code` of a float_code payload decodes to: code_value * 2^-scale_exponent,
/// rounded once to T (ldexp is exact unless the result falls below DBL_MIN, where it rounds
/// once; the cast to float then is exact or the only rounding). Compressor output decodes
/// exactly: the code is the input rounded to fewer significant bits, which T can hold.
template <class T>
GRADCOMP_HD T decode_code(code_format f, std::int32_t scale_exponent, std::uint16_t code) noexcept {
  return static_cast<T>(std::ldexp(code_value<T>(f, code), -scale_exponent));
}

}  // namespace detail
}  // namespace gradcomp
