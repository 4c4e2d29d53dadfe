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

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, quantized_vector<T>& out) {
    validate();
    const T q = static_cast<T>(spacing);
    if (!(q > T(0)) || !std::isfinite(q))
      detail::fail("grid_rounding", "spacing ", spacing, " is not a positive finite value of the value type");
    // Check everything before writing, so a failure leaves out untouched.
    detail::require_finite(x, "grid_rounding");
    // A level must also decode to a finite q * level. Only a q within a factor 2^31 of T's
    // largest value leaves some int32 levels that do not; then each element's largest
    // possible level is checked (round(r), or ceil(r) when stochastic), whatever the draws.
    const bool any_level_decodes = detail::every_level_decodes_finite(q);
    const double top = any_level_decodes ? max_level : static_cast<double>(detail::largest_finite_level(q));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double r = std::fabs(static_cast<double>(x[i])) / static_cast<double>(q);
      if (r >= max_level)
        detail::fail("grid_rounding", "x[", i, "] / spacing = ", r, " exceeds the int32 level range; use a larger spacing");
      if (!any_level_decodes) {
        const double upper = stochastic ? std::ceil(r) : std::round(r);
        if (upper > top)
          detail::fail("grid_rounding", "x[", i, "] = ", x[i], " can be rounded to level ", upper,
                       ", and spacing * level (spacing = ", q,
                       ") overflows the value type; scale the input down or use a smaller spacing");
      }
    }
    out.dim = x.size();
    out.scale = q;
    out.levels.resize(x.size());
    const detail::counter_stream stream(seed, step);
    std::uint32_t coded_or = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::int32_t level = detail::grid_level(x[i], static_cast<double>(q), stochastic, stream, i);
      out.levels[i] = level;
      coded_or |= detail::zigzag(level);
    }
    out.level_bits = detail::bits_to_hold(coded_or);
    ++step;
  }
};

}  // namespace gradcomp
