#pragma once
// Rounding to a grid of spacing q: an absolute compressor.
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/bitpack.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/bits.hpp"
#include "../detail/finite.hpp"
#include "../detail/random.hpp"
#include "../detail/write_levels.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/quantized.hpp"

namespace gradcomp {

/// C(x)_i = q * l_i with l_i an integer: round(x_i / q) (half away from zero) when
/// stochastic is false, otherwise floor(x_i / q) or that + 1, the upper one with probability
/// frac(x_i / q) (unbiased). Here q is `spacing` rounded to T, the value receivers multiply by.
/// Error per entry: at most q/2 (nearest), below q (stochastic), so
/// ||x - C(x)||^2 <= d q^2 / 4 or d q^2, up to the rounding of q * l_i in T.
/// Levels are int32: |x_i| / q must stay below 2^31 - 2. Finite input either decodes to
/// finite values or fails with gc::error before anything is written: a level whose q * level
/// would overflow T (only possible when x_i is within q of T's largest value) is rejected,
/// not clamped, since the nearer finite grid point would break the absolute bound.
struct grid_rounding {
  static constexpr std::string_view name = "grid_rounding";
  static constexpr aggregation_class aggregation = aggregation_class::gather;
  static constexpr double max_level = 2147483646.0;

  double spacing = 1.0;
  bool stochastic = false;
  std::uint64_t seed = 0;
  std::uint64_t step = 0;

  template <std::floating_point T>
  using payload_type = quantized_vector<T>;

  void validate() const {
    if (!(spacing > 0.0) || !std::isfinite(spacing))
      detail::fail("grid_rounding", "spacing must be > 0 and finite (got ", spacing, ")");
  }

  /// d q^2 / 4 (nearest) or d q^2 (stochastic), rounded up.
  double absolute_bound(std::size_t d) const {
    return detail::product_upper_bound(static_cast<double>(d) * (stochastic ? 1.0 : 0.25), spacing, spacing);
  }

  /// What a finite element's level must stay within, for the spacing q (a value of T).
  struct level_limits {
    bool any_level_decodes;  // every int32 level decodes to a finite q * level
    double top;              // else the largest level that does
  };
  template <std::floating_point T>
  static level_limits limits_for(T q) noexcept {
    const bool any = detail::every_level_decodes_finite(q);
    return {any, any ? max_level : static_cast<double>(detail::largest_finite_level(q))};
  }

  /// |x| / q, and the largest level any draw can give x (round, or ceil when stochastic).
  template <std::floating_point T>
  GRADCOMP_HD static double ratio(T x, T q) noexcept {
    return std::fabs(static_cast<double>(x)) / static_cast<double>(q);
  }
  GRADCOMP_HD double largest_level(double r) const noexcept { return stochastic ? std::ceil(r) : std::round(r); }

  /// Does finite x fail: beyond the int32 level range, or a level whose q * level overflows?
  template <std::floating_point T>
  GRADCOMP_HD bool element_fails(T x, T q, level_limits limits) const noexcept {
    const double r = ratio(x, q);
    return r >= max_level || (!limits.any_level_decodes && largest_level(r) > limits.top);
  }

  /// The error for element i = x, which element_fails.
  template <std::floating_point T>
  void fail_element(std::size_t i, T x, T q) const {
    const double r = ratio(x, q);
    if (r >= max_level)
      detail::fail("grid_rounding", "x[", i, "] / spacing = ", r, " exceeds the int32 level range; use a larger spacing");
    detail::fail("grid_rounding", "x[", i, "] = ", x, " can be rounded to level ", largest_level(r),
                 ", and spacing * level (spacing = ", q,
                 ") overflows the value type; scale the input down or use a smaller spacing");
  }

  /// q = spacing rounded to T, or gc::error when T cannot hold it.
  template <std::floating_point T>
  T checked_spacing() const {
    const T q = static_cast<T>(spacing);
    if (!(q > T(0)) || !std::isfinite(q))
      detail::fail("grid_rounding", "spacing ", spacing, " is not a positive finite value of the value type");
    return q;
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, quantized_vector<T>& out) {
    validate();
    const T q = checked_spacing<T>();
    // Check everything before writing, so a failure leaves out untouched.
    detail::require_finite(x, "grid_rounding");
    // A level must also decode to a finite q * level. Only a q within a factor 2^31 of T's
    // largest value leaves some int32 levels that do not; then each element's largest
    // possible level is checked (round(r), or ceil(r) when stochastic), whatever the draws.
    const level_limits limits = limits_for(q);
    for (std::size_t i = 0; i < x.size(); ++i)
      if (element_fails(x[i], q, limits)) fail_element(i, x[i], q);
    const detail::counter_stream stream(seed, step);
    detail::write_levels(
        x, q, level_coding::linear,
        [&](T v, std::size_t i) { return detail::grid_level(v, static_cast<double>(q), stochastic, stream, i); }, out);
    ++step;
  }
};

}  // namespace gradcomp
