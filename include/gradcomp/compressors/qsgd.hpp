#pragma once
// QSGD (Alistarh et al. 2017): stochastic quantization to s levels of ||x||_2. Unbiased.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/bitpack.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/finite.hpp"
#include "../detail/random.hpp"
#include "../detail/reduce.hpp"
#include "../detail/write_levels.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/quantized.hpp"

namespace gradcomp {

namespace detail {

/// out = the payload whose element i is scale * sign(x_i) * stochastic_round(|x_i| / scale)
/// with draw i of stream (detail::qsgd_level; all levels 0 when scale is 0): the levels of
/// QSGD (scale ||x||_2 / s) and of TernGrad (scale max |x_i|).
template <std::floating_point T>
void stochastic_levels(std::span<const T> x, T scale, const counter_stream& stream, quantized_vector<T>& out) {
  write_levels(
      x, scale, level_coding::linear,
      [&](T v, std::size_t i) { return qsgd_level(v, static_cast<double>(scale), stream, i); }, out);
}

/// How l2_scale's error names the compressor and its divisor.
struct l2_divisor_name {
  const char* who;      // "qsgd"
  const char* divisor;  // "s"
  std::uint32_t s;
};

/// ||x||_2 / divisor rounded to T, for finite x whose norm is `norm` (detail::l2_norm, or a
/// back end's bit-identical equal), or gc::error from `who`: non-finite input, or a scale T
/// cannot hold. A norm beyond DBL_MAX (double input only) is divided before it is scaled
/// back, so the scale is still exact when it fits. require_finite() throws naming the first
/// non-finite entry; shift() is max_exponent(x) of finite x; scaled_sum(e) is the ordered sum
/// of scaled_square_summand(x_i, e): asked for only when the norm is not finite.
template <std::floating_point T, class RequireFinite, class Shift, class ScaledSum>
T l2_scale(double norm, double divisor, const l2_divisor_name& name, RequireFinite&& require_finite, Shift&& shift,
           ScaledSum&& scaled_sum) {
  double scale = norm / divisor;
  if (!std::isfinite(norm)) {
    require_finite();  // names the first NaN or Inf
    // The sum of detail::l2_norm's rescaled path, as it computes it, then / divisor, then scaled back.
    const int e = shift();
    scale = std::ldexp(std::sqrt(scaled_sum(e)) / divisor, e);
  }
  const T rounded = static_cast<T>(scale);
  if (!std::isfinite(rounded))
    fail(name.who, "scale ||x||_2 / ", name.divisor, " = ", scale, " (s = ", name.s,
         ") overflows the value type; scale the input down");
  return rounded;
}

/// The largest level `largest_level(x_i, scale)` of any x_i must decode to a finite
/// scale * level: fails through fail_at(i) for the first that may not. Only an input within
/// about one scale of T's largest value can fail. Checked before anything is written, and
/// independent of the draws.
template <std::floating_point T, class LargestLevel, class FailAt>
void check_levels_decode_finite(std::span<const T> x, T scale, LargestLevel&& largest_level, FailAt&& fail_at) {
  if (every_level_decodes_finite(scale)) return;  // the usual case: scale < max(T) / 2^31
  const auto top = static_cast<double>(largest_finite_level(scale));
  for (std::size_t i = 0; i < x.size(); ++i)
    if (largest_level(x[i], scale) > top) fail_at(i);
}

}  // namespace detail

/// C(x)_i = scale * sign(x_i) * l_i with scale = ||x||_2 / s (rounded to T) and l_i one of
/// floor(r_i), floor(r_i) + 1 for r_i = |x_i| / scale, the upper one with probability
/// r_i - floor(r_i). So E C(x) = x and E||C(x) - x||^2 <= min(d/s^2, sqrt(d)/s) ||x||^2.
/// The uniform draw for element i is number i of the (seed, step) stream; step advances
/// on every call. Give each worker its own seed: QSGD's noise should be independent.
/// Finite input either decodes to finite values or fails with gc::error before anything is
/// written (a scale T cannot hold, or a level whose scale * level overflows T).
struct qsgd {
  static constexpr std::string_view name = "qsgd";
  static constexpr aggregation_class aggregation = aggregation_class::gather;
  static constexpr std::uint32_t max_levels = std::uint32_t{1} << 30;

  std::uint32_t s = 1;
  std::uint64_t seed = 0;
  std::uint64_t step = 0;

  template <std::floating_point T>
  using payload_type = quantized_vector<T>;

  void validate() const {
    if (s == 0) detail::fail("qsgd", "s (number of levels) must be >= 1 (got 0)");
    if (s > max_levels) detail::fail("qsgd", "s (number of levels) must be <= 2^30 (got ", s, ")");
  }

  double omega(std::size_t d) const {
    const double dd = static_cast<double>(d), ss = static_cast<double>(s);
    return std::min(dd / (ss * ss), std::sqrt(dd) / ss);
  }

  /// scale = ||x||_2 / s rounded to T, for finite x whose norm is `norm` (detail::l2_norm, or a
  /// back end's bit-identical equal), or gc::error: non-finite input, or a scale T cannot hold.
  /// A norm beyond DBL_MAX (double input only) is divided by s before it is scaled back, so
  /// the scale is still exact when it fits.
  template <std::floating_point T>
  T checked_scale(std::span<const T> x, double norm) const {
    return checked_scale_from<T>(
        norm, [&] { detail::require_finite(x, "qsgd"); }, [&] { return *detail::max_exponent(x); },
        [&](int shift) { return detail::ordered_sum(x, [shift](T v) { return detail::scaled_square_summand(v, shift); }); });
  }

  /// checked_scale from its parts, for back ends that compute them their own way (see
  /// detail::l2_scale).
  template <std::floating_point T, class RequireFinite, class Shift, class ScaledSum>
  T checked_scale_from(double norm, RequireFinite&& require_finite, Shift&& shift, ScaledSum&& scaled_sum) const {
    return detail::l2_scale<T>(norm, static_cast<double>(s), {"qsgd", "s", s}, require_finite, shift, scaled_sum);
  }

  /// Fails unless every level any draw can give decodes to a finite scale * level: element i
  /// gets at most ceil(|x_i| / scale).
  template <std::floating_point T>
  void check_levels_decode_finite(std::span<const T> x, T scale) const {
    detail::check_levels_decode_finite(
        x, scale, [](T v, T sc) { return largest_level(v, sc); }, [&](std::size_t i) { fail_level_overflow(i, x[i], scale); });
  }

  /// The largest level any draw can give x: ceil(|x| / scale).
  template <std::floating_point T>
  GRADCOMP_HD static double largest_level(T x, T scale) noexcept {
    return std::ceil(std::fabs(static_cast<double>(x)) / static_cast<double>(scale));
  }

  /// Can x's level exceed top, the largest level that decodes to a finite value?
  template <std::floating_point T>
  GRADCOMP_HD static bool level_may_overflow(T x, T scale, double top) noexcept {
    return largest_level(x, scale) > top;
  }

  /// The error for element i = x, whose level may overflow.
  template <std::floating_point T>
  void fail_level_overflow(std::size_t i, T x, T scale) const {
    detail::fail("qsgd", "x[", i, "] = ", x, " can be quantized to level ", largest_level(x, scale),
                 ", and scale * level (scale = ", scale,
                 ") overflows the value type: the input is within ||x||_2 / s of its largest value; "
                 "scale the input down or use a larger s");
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, quantized_vector<T>& out) {
    validate();
    const T scale = checked_scale(x, detail::l2_norm(x));
    check_levels_decode_finite(x, scale);

    // scale == 0 only for x == 0, or ||x|| / s below T's smallest subnormal.
    detail::stochastic_levels(x, scale, detail::counter_stream(seed, step), out);
    ++step;
  }
};

}  // namespace gradcomp
