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
/// Levels are int32: |x_i| / q must stay below 2^31 - 1.
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
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double r = std::fabs(static_cast<double>(x[i])) / static_cast<double>(q);
      if (r >= max_level)
        detail::fail("grid_rounding", "x[", i, "] / spacing = ", r, " exceeds the int32 level range; use a larger spacing");
    }
    out.dim = x.size();
    out.scale = q;
    out.levels.resize(x.size());
    const detail::counter_stream stream(seed, step);
    std::uint32_t coded_or = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double r = static_cast<double>(x[i]) / static_cast<double>(q);
      double l;
      if (stochastic) {
        l = std::floor(r);
        if (stream.uniform(i) < r - l) l += 1.0;
      } else {
        l = std::round(r);
      }
      const auto level = static_cast<std::int32_t>(l);
      out.levels[i] = level;
      coded_or |= detail::zigzag(level);
    }
    out.level_bits = detail::bits_to_hold(coded_or);
    ++step;
  }
};

}  // namespace gradcomp
