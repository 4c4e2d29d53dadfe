#pragma once
// Casts to 16-bit floats, float16 (IEEE binary16) and bfloat16, with a power-of-two pre-scale
// so that large gradients do not overflow (float16's largest value is 65504) and small ones do
// not flush to zero: what PyTorch's fp16/bf16 compression hooks send, with their error bound.
// A delta-contraction.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/finite.hpp"
#include "../detail/float_codes.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/float_code.hpp"

namespace gradcomp {

/// C(x)_i = round(x_i * 2^e) * 2^-e, rounded to the 16-bit Format (float16 or bfloat16) to
/// nearest with ties to even, from T directly in one rounding (detail::round_to_half). With
/// pre_scale, e puts max|x| in [2^(emax-1), 2^emax) of the format (emax = 15 for float16, 127
/// for bfloat16): nothing overflows, the largest entry keeps every significant bit the format
/// has, and the rest of the range is left for the small entries; e = 0 for x = 0. Without
/// pre_scale, e = 0 (the plain cast) and an entry that would round to +-Inf throws.
///
/// Bounds, with u = 2^-11 (float16) or 2^-8 (bfloat16), the unit roundoff:
///   elementwise: |C(x)_i - x_i| <= u |x_i| for every i whose scaled value |x_i| 2^e is in
///     the format's normal range (>= 2^-14 for float16, 2^-126 for bfloat16); every other
///     entry moves by at most |x_i| (0 is representable) and by half the smallest subnormal;
///   delta-contraction: ||C(x) - x||^2 <= (1 - delta) ||x||^2 with delta = (1 - u^2) / d, since
///     the largest entry is in the normal range (always with pre_scale; without it, when
///     max|x| is at least the smallest normal) and contributes at most u^2 max|x|^2.
/// Decoding is exact (the code is the input with fewer significant bits, which T holds), so
/// these are the bounds of the decoded values. NaN or Inf input throws naming the first bad
/// index. Finite input decodes to finite values or throws before anything is written: with
/// pre_scale that only happens within half a code ulp of T's largest value, which rounds to
/// 2^(emax(T) + 1).
template <code_format Format>
struct half_cast {
  static_assert(Format == code_format::float16 || Format == code_format::bfloat16,
                "half_cast rounds to float16 or bfloat16");

  static constexpr std::string_view name = Format == code_format::float16 ? "float16_cast" : "bfloat16_cast";
  static constexpr aggregation_class aggregation = aggregation_class::gather;  // per-worker scales differ
  static constexpr code_format format = Format;
  /// u: |C(x)_i - x_i| <= u |x_i| for entries whose scaled value is in the normal range.
  static constexpr double unit_roundoff = detail::unit_roundoff(Format);

  bool pre_scale = true;

  template <std::floating_point T>
  using payload_type = float_code_vector<T>;

  /// Every field value is valid; here for uniformity with the other compressors.
  void validate() const noexcept {}

  double delta(std::size_t d) const noexcept {
    return d == 0 ? 1.0 : (1.0 - unit_roundoff * unit_roundoff) / static_cast<double>(d);
  }

  /// The elementwise relative error bound u (see the struct's comment for which entries).
  static constexpr double relative_error_bound() noexcept { return unit_roundoff; }

  /// The scale exponent e for inputs whose largest magnitude is max_abs.
  template <std::floating_point T>
  std::int32_t scale_exponent_for(T max_abs) const noexcept {
    return pre_scale ? detail::pre_scale_exponent(Format, max_abs) : 0;
  }

  /// Does x's code at scale exponent e decode to a finite value of T?
  template <std::floating_point T>
  static bool decodes_finite(T x, std::int32_t e) noexcept {
    return std::isfinite(detail::decode_code<T>(Format, e, detail::round_to_half(Format, x, e)));
  }

  /// Fails unless every code decodes to a finite value, for finite x whose largest magnitude
  /// is max_abs. Rounding is monotone in |x|, so the largest entry decides; when it fails, the
  /// first entry that fails is named.
  template <std::floating_point T>
  void check_codes_decode_finite(std::span<const T> x, T max_abs, std::int32_t e) const {
    if (decodes_finite(max_abs, e)) return;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!decodes_finite(x[i], e)) fail_overflow(i, x[i], e);
  }

  template <std::floating_point T>
  [[noreturn]] void fail_overflow(std::size_t i, T x, std::int32_t e) const {
    if (!pre_scale)
      detail::fail(name.data(), "x[", i, "] = ", x, " rounds to +-inf in ", detail::format_name(Format),
                   " (largest finite value ", detail::code_value<T>(Format, detail::layout_of(Format).inf_code() - 1),
                   "); set pre_scale = true to scale the input into range");
    detail::fail(name.data(), "x[", i, "] = ", x, " rounds to 2^", detail::layout_of(Format).bias() - e, " in ",
                 detail::format_name(Format), " (", detail::layout_of(Format).mantissa_bits + 1,
                 " significant bits), which overflows the value type: scale the input down");
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, float_code_vector<T>& out) const {
    validate();
    detail::require_finite(x, name.data());
    T max_abs = T(0);
    for (const T v : x) max_abs = std::max(max_abs, std::fabs(v));
    const std::int32_t e = scale_exponent_for(max_abs);
    check_codes_decode_finite(x, max_abs, e);

    out.dim = x.size();
    out.format = Format;
    out.scale_exponent = e;
    out.codes.resize(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) out.codes[i] = detail::round_to_half(Format, x[i], e);
  }
};

/// x rounded to IEEE binary16 (pre-scaled by a power of two unless pre_scale = false).
using float16_cast = half_cast<code_format::float16>;
/// x rounded to bfloat16 (pre-scaled by a power of two unless pre_scale = false).
using bfloat16_cast = half_cast<code_format::bfloat16>;

}  // namespace gradcomp
