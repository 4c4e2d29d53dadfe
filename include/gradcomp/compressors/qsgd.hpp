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
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/quantized.hpp"

namespace gradcomp {

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
    double scale = norm / static_cast<double>(s);
    if (!std::isfinite(norm)) {
      detail::require_finite(x, "qsgd");  // names the first NaN or Inf
      // The sum of detail::l2_norm's rescaled path, as it computes it, then / s, then scaled back.
      const int shift = *detail::max_exponent(x);
      const double scaled = detail::ordered_sum(x, [shift](T v) {
        const double w = std::ldexp(static_cast<double>(v), -shift);
        return w * w;
      });
      scale = std::ldexp(std::sqrt(scaled) / static_cast<double>(s), shift);
    }
    const T rounded = static_cast<T>(scale);
    if (!std::isfinite(rounded))
      detail::fail("qsgd", "scale ||x||_2 / s = ", scale, " (s = ", s,
                   ") overflows the value type; scale the input down");
    return rounded;
  }

  /// Fails unless every level any draw can give decodes to a finite scale * level: element i
  /// gets at most ceil(|x_i| / scale), so only an input within about one scale of T's largest
  /// value can fail. Checked before anything is written, and independent of the draws.
  template <std::floating_point T>
  void check_levels_decode_finite(std::span<const T> x, T scale) const {
    if (detail::every_level_decodes_finite(scale)) return;  // the usual case: scale < max(T) / 2^31
    const auto top = static_cast<double>(detail::largest_finite_level(scale));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double upper = std::ceil(std::fabs(static_cast<double>(x[i])) / static_cast<double>(scale));
      if (upper > top)
        detail::fail("qsgd", "x[", i, "] = ", x[i], " can be quantized to level ", upper,
                     ", and scale * level (scale = ", scale,
                     ") overflows the value type: the input is within ||x||_2 / s of its largest value; "
                     "scale the input down or use a larger s");
    }
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, quantized_vector<T>& out) {
    validate();
    const T scale = checked_scale(x, detail::l2_norm(x));
    check_levels_decode_finite(x, scale);

    out.dim = x.size();
    out.scale = scale;
    out.levels.resize(x.size());
    const detail::counter_stream stream(seed, step);
    std::uint32_t coded_or = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      std::int32_t level = 0;
      // scale == 0 only for x == 0, or ||x|| / s below T's smallest subnormal.
      if (scale > T(0)) level = detail::qsgd_level(x[i], static_cast<double>(scale), stream, i);
      out.levels[i] = level;
      coded_or |= detail::zigzag(level);
    }
    out.level_bits = detail::bits_to_hold(coded_or);
    ++step;
  }
};

}  // namespace gradcomp
