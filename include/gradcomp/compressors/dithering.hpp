#pragma once
// Random dithering (BytePS's "dithering"): stochastic rounding of |x_i| / ||x|| to s levels,
// with a linear partition of [0, 1] (QSGD's levels) or the natural one {0, 2^(1-s), ..., 1/2,
// 1} (Horvath et al. 2019, "Natural compression for distributed deep learning"), normalised
// by max |x_i| or by ||x||_2. Unbiased.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/finite.hpp"
#include "../detail/random.hpp"
#include "../detail/reduce.hpp"
#include "../detail/write_levels.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/quantized.hpp"
#include "qsgd.hpp"

namespace gradcomp {

/// C(x)_i = N * sign(x_i) * l_i with N = max |x_i| (norm = max) or ||x||_2 (norm = l2) and l_i
/// one of the two levels next to t_i = |x_i| / N, the upper with the probability that makes
/// E l_i = t_i:
///   - partition = linear: levels {0, 1/s, 2/s, ..., 1}. With norm = l2 this is QSGD with s
///     levels, bit for bit (the same scale function, level rule and stream; only the errors
///     name dithering); with norm = max and s = 1 it is TernGrad.
///   - partition = natural: levels {0, 2^(1-s), 2^(2-s), ..., 1/2, 1}: s nonzero levels, each
///     twice the one below (detail::natural_level), written as exponents on the wire
///     (level_coding::power_of_two). Both partitions cost about log2(s) + 2 bits per element,
///     but natural levels reach 2^(1-s) N where linear ones stop at N / s.
/// The message is a quantized_vector: scale = N / s (linear) or N 2^(1-s) (natural), rounded
/// to T, and integer levels (0..s, or 0 and powers of two up to 2^(s-1)), signed as x.
///
/// E C(x) = x (up to the scale's rounding to T), and E||C(x) - x||^2 <= omega ||x||^2 with
///   - linear: omega = min(d / s^2, sqrt(d) / s), QSGD's bound (Alistarh et al. 2017, Lemma
///     3.1); its proof uses only N >= |x_i| and N <= ||x||_2, which max |x_i| satisfies too;
///   - natural: omega = 1/8 + sqrt(d) 2^(1-s) min(1, sqrt(d) 2^(1-s)) (Horvath et al. 2019,
///     Theorem 7, with r = min(p, 2) = 2 for both norms): between two nonzero levels the
///     variance is at most t^2 / 8, below the lowest one u = 2^(1-s) at most min(u^2/4, t u).
///
/// Element i uses draw i of the (seed, step) stream; step advances on every successful call.
/// Give each worker its own seed. NaN or Inf input, a scale T cannot hold, or a level whose
/// scale * level would overflow T fails with gc::error before anything is written.
struct dithering {
  enum class partition_kind : std::uint8_t { linear, natural };
  enum class norm_kind : std::uint8_t { max, l2 };
  static constexpr partition_kind linear = partition_kind::linear;
  static constexpr partition_kind natural = partition_kind::natural;
  static constexpr norm_kind max = norm_kind::max;
  static constexpr norm_kind l2 = norm_kind::l2;

  static constexpr std::string_view name = "dithering";
  static constexpr aggregation_class aggregation = aggregation_class::gather;
  static constexpr std::uint32_t max_linear_levels = qsgd::max_levels;  // 2^30
  static constexpr std::uint32_t max_natural_levels = 30;  // levels up to 2^30 fit the payload's int32

  std::uint32_t s = 1;  // nonzero levels
  partition_kind partition = linear;
  norm_kind norm = max;
  std::uint64_t seed = 0;
  std::uint64_t step = 0;

  template <std::floating_point T>
  using payload_type = quantized_vector<T>;

  void validate() const {
    if (partition != linear && partition != natural)
      detail::fail("dithering", "partition ", static_cast<unsigned>(partition), " is neither linear nor natural");
    if (norm != max && norm != l2) detail::fail("dithering", "norm ", static_cast<unsigned>(norm), " is neither max nor l2");
    if (s == 0) detail::fail("dithering", "s (number of levels) must be >= 1 (got 0)");
    if (partition == linear && s > max_linear_levels)
      detail::fail("dithering", "s (number of levels) must be <= 2^30 for the linear partition (got ", s, ")");
    if (partition == natural && s > max_natural_levels)
      detail::fail("dithering", "s (number of levels) must be <= 30 for the natural partition (got ", s,
                   "): its top level is 2^(s-1) times its lowest");
  }

  double omega(std::size_t d) const {
    const double dd = static_cast<double>(d);
    if (partition == linear) return qsgd{.s = s}.omega(d);
    if (d == 0) return 0.0;
    const double a = std::sqrt(dd) * std::ldexp(1.0, 1 - static_cast<int>(s));
    return 0.125 + a * std::min(1.0, a);
  }

  /// What N is divided by to give the scale: s, or 2^(s-1) (exact powers of two).
  double divisor() const {
    return partition == linear ? static_cast<double>(s) : std::ldexp(1.0, static_cast<int>(s) - 1);
  }

  /// How the l2 scale's overflow error names the divisor.
  detail::l2_divisor_name divisor_name() const { return {"dithering", partition == linear ? "s" : "2^(s-1)", s}; }

  /// The scale for the max norm: max |x_i| (an entry of finite x) / divisor, rounded to T.
  template <std::floating_point T>
  T max_scale(T largest) const {
    return static_cast<T>(static_cast<double>(largest) / divisor());
  }

  /// The level rule of the partition for element i (scale > 0).
  template <std::floating_point T>
  GRADCOMP_HD static std::int32_t level(partition_kind p, T x, double scale, const detail::counter_stream& stream,
                                        std::size_t i) noexcept {
    return p == partition_kind::linear ? detail::qsgd_level(x, scale, stream, i) : detail::natural_level(x, scale, stream, i);
  }

  /// The largest level any draw can give x: ceil(r) (linear), or for natural 1 when r <= 1
  /// and else the power of two at or above r; r = |x| / scale.
  template <std::floating_point T>
  GRADCOMP_HD static double largest_level(partition_kind p, T x, T scale) noexcept {
    const double r = std::fabs(static_cast<double>(x)) / static_cast<double>(scale);
    if (p == partition_kind::linear) return std::ceil(r);
    if (r <= 1.0) return 1.0;
    int e;
    (void)std::frexp(r, &e);
    const double low = std::ldexp(1.0, e - 1);
    return r == low ? low : 2.0 * low;
  }

  static level_coding coding_of(partition_kind p) noexcept {
    return p == partition_kind::linear ? level_coding::linear : level_coding::power_of_two;
  }

  /// Fails (naming element i) unless every level any draw can give decodes to a finite value.
  template <std::floating_point T>
  void check_levels_decode_finite(std::span<const T> x, T scale) const {
    detail::check_levels_decode_finite(
        x, scale, [this](T v, T sc) { return largest_level(partition, v, sc); },
        [&](std::size_t i) {
          detail::fail("dithering", "x[", i, "] = ", x[i], " can be quantized to level ",
                       largest_level(partition, x[i], scale), ", and scale * level (scale = ", scale,
                       ") overflows the value type: the input is within one scale of its largest value; "
                       "scale the input down");
        });
  }

  /// The scale of x under the norm, or gc::error (NaN or Inf input, a scale T cannot hold).
  template <std::floating_point T>
  T checked_scale(std::span<const T> x) const {
    if (norm == max) {
      detail::require_finite(x, "dithering");
      return max_scale(detail::max_abs(x));
    }
    return detail::l2_scale<T>(
        detail::l2_norm(x), divisor(), divisor_name(), [&] { detail::require_finite(x, "dithering"); },
        [&] { return *detail::max_exponent(x); },
        [&](int shift) {
          return detail::ordered_sum(x, [shift](T v) { return detail::scaled_square_summand(v, shift); });
        });
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, quantized_vector<T>& out) {
    validate();
    const T scale = checked_scale(x);
    check_levels_decode_finite(x, scale);
    // scale == 0 only for x == 0, or N / divisor below T's smallest subnormal: all levels 0.
    const detail::counter_stream stream(seed, step);
    const partition_kind p = partition;
    detail::write_levels(
        x, scale, coding_of(p),
        [&](T v, std::size_t i) { return level(p, v, static_cast<double>(scale), stream, i); }, out);
    ++step;
  }
};

}  // namespace gradcomp
