#pragma once
// Max-min quantization in buckets, the stochastic quantizer of CGX (Markov et al., "CGX:
// Adaptive system support for communication-efficient deep learning", Middleware 2022).
// Unbiased.
//
// Definition. Cut x into buckets of B = bucket_size consecutive elements (the last may be
// shorter). For bucket b with smallest value m and largest M, and L = 2^bits - 1 levels:
//
//   unit  = the smallest value of T with unit * L >= M - m (M - m taken in double),
//           0 for a constant bucket (detail::maxmin_unit);
//   q_i   = stochastic_round((x_i - m) / unit) with draw i of the (seed, step) counter stream,
//           computed in double; q_i is in [0, L] (detail::maxmin_level proves it);
//   C(x)_i = m + unit * q_i, in T (detail::maxmin_value).
//
// Unbiased: in real arithmetic E q_i = (x_i - m) / unit, so E C(x)_i = x_i.
//
// Variance, omega(d) = min(B, d) / (2 L^2) (times a rounding factor, below). Element i of a
// bucket has E (C(x)_i - x_i)^2 = unit^2 f (1 - f) <= unit^2 / 4, f the fractional part of
// (x_i - m) / unit. If unit were exactly (M - m) / L, a bucket of n_b <= min(B, d) elements
// would have
//     sum_i E (C(x)_i - x_i)^2 <= n_b (M - m)^2 / (4 L^2).
// With two or more elements, m and M are two different entries of the bucket, and
// (M - m)^2 <= (M - m)^2 + (M + m)^2 = 2 (M^2 + m^2) <= 2 ||x_b||^2 (with one element M = m).
// So the bucket's error is at most min(B, d) ||x_b||^2 / (2 L^2), and summing over buckets,
//     E ||C(x) - x||^2 <= min(B, d) / (2 L^2) ||x||^2.
// The bound is tight up to a factor (n_b - 2) / n_b: in x_b = (-a, a, 0, ..., 0) every zero
// lies half-way between two grid points ((x_i - m) / unit = L / 2, and L is odd), while the
// extremes themselves, at levels 0 and L, have no error.
//
// Rounding. unit is rounded up to T, so unit < ((M - m) / L) / (1 - 2^-23) for a normal float
// unit (2^-52 for double), and M - m is rounded once in double: unit^2 exceeds ((M - m) / L)^2
// by less than a factor 1 + 2^-21. omega() includes the factor 1 + 2^-20 for it
// (unit_rounding_factor). It only matters for buckets of more than about 2^22 elements: the
// minimum has no error and the maximum next to none ((M - m) / unit is L or a hair below), so a
// bucket's error is at most about (n_b - 2) unit^2 / 4, and the lost 2 / n_b absorbs the
// rounding (the unit tests find no input that needs the factor). A unit in T's subnormal
// range is rounded by up to one subnormal step, an absolute error the relative bound cannot
// absorb (as for the scales of the sign compressors); the bound holds for every bucket whose
// unit is a normal number. The decoded values are rounded in T like every payload's.
//
// Errors. NaN or Inf input throws gc::error naming the first bad index. Finite input decodes to
// finite values or throws before anything is written: a bucket whose top level m + unit * L
// is not finite in T (in practice: its range M - m reaches about T's largest value, since
// unit * L >= M - m is formed in T) is rejected; decoding is monotone in the level, so then every level is
// finite. The payload and the step are unchanged on every error; the step advances on every
// successful call.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/finite.hpp"
#include "../detail/host_device.hpp"
#include "../detail/maxmin.hpp"
#include "../detail/random.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/bucket_quantized.hpp"

namespace gradcomp {

struct maxmin_quantizer {
  static constexpr std::string_view name = "maxmin_quantizer";
  static constexpr aggregation_class aggregation = aggregation_class::gather;
  /// How much the rounding of unit (up to T) and of M - m (to double) may raise the variance
  /// above min(B, d) / (2 L^2) ||x||^2 (header comment): less than 1 + 2^-21.
  static constexpr double unit_rounding_factor = 1.0 + 0x1p-20;

  std::uint32_t bits = 8;             // level width, 1..8: L = 2^bits - 1
  std::size_t bucket_size = 1024;     // B >= 1
  std::uint64_t seed = 0;
  std::uint64_t step = 0;

  template <std::floating_point T>
  using payload_type = bucket_quantized_vector<T>;

  void validate() const {
    if (bits < 1 || bits > 8) detail::fail("maxmin_quantizer", "bits must be in [1, 8] (got ", bits, ")");
    if (bucket_size == 0) detail::fail("maxmin_quantizer", "bucket_size must be >= 1 (got 0)");
  }

  double omega(std::size_t d) const {
    const double n = static_cast<double>(std::min(bucket_size, d));
    const double top = std::ldexp(1.0, static_cast<int>(std::min<std::uint32_t>(bits, 64))) - 1.0;
    return n == 0.0 ? 0.0 : n / (2.0 * top * top) * unit_rounding_factor;
  }

  /// The minimum and grid unit of a bucket with extremes e.
  template <std::floating_point T>
  struct grid {
    T min;
    T unit;
  };

  /// (Host and device: the CUDA back end computes every bucket's grid with it.)
  template <std::floating_point T>
  GRADCOMP_HD grid<T> grid_of(detail::bucket_extremes<T> e) const noexcept {
    return {e.lo, detail::maxmin_unit<T>(detail::bucket_range(e.lo, e.hi), detail::top_level(bits))};
  }

  /// Whether a bucket with grid g decodes its top level, hence every level, to a finite value.
  template <std::floating_point T>
  GRADCOMP_HD bool top_level_finite(grid<T> g) const noexcept {
    return std::isfinite(detail::maxmin_value(g.min, g.unit, detail::top_level(bits)));
  }

  /// Fails unless bucket b (elements [first, first + n)), with extremes e and grid g, decodes
  /// its top level to a finite value. Depends on x only, never on the draws.
  template <std::floating_point T>
  void check_grid(std::size_t b, std::size_t first, std::size_t n, detail::bucket_extremes<T> e, grid<T> g) const {
    const std::uint32_t top = detail::top_level(bits);
    if (top_level_finite(g)) return;
    detail::fail("maxmin_quantizer", "bucket ", b, " (x[", first, "] to x[", first + n - 1, "]) spans [", e.lo, ", ",
                 e.hi, "]: its top level min + unit * ", top, " (unit = ", g.unit,
                 ") overflows the value type; the range max - min must stay well below the largest value of T, "
                 "scale the input down");
  }

  /// The bucket of x that starts at element first.
  template <std::floating_point T>
  std::span<const T> bucket_at(std::span<const T> x, std::size_t first) const noexcept {
    return x.subspan(first, std::min(bucket_size, x.size() - first));
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, bucket_quantized_vector<T>& out) {
    validate();
    detail::require_finite(x, "maxmin_quantizer");
    const std::size_t nb = detail::bucket_count(x.size(), bucket_size);
    // Every bucket is checked before anything is written.
    for (std::size_t b = 0; b < nb; ++b) {
      const auto bucket = bucket_at(x, b * bucket_size);
      const auto e = detail::extremes_of(bucket);
      check_grid(b, b * bucket_size, bucket.size(), e, grid_of(e));
    }

    out.dim = x.size();
    out.bucket_size = bucket_size;
    out.bits = bits;
    out.mins.resize(nb);
    out.units.resize(nb);
    out.levels.resize(x.size());
    const detail::counter_stream stream(seed, step);
    for (std::size_t b = 0; b < nb; ++b) {
      const std::size_t first = b * bucket_size;
      const auto bucket = bucket_at(x, first);
      const grid<T> g = grid_of(detail::extremes_of(bucket));
      out.mins[b] = g.min;
      out.units[b] = g.unit;
      for (std::size_t i = first; i < first + bucket.size(); ++i)
        out.levels[i] = static_cast<std::uint8_t>(detail::maxmin_level(x[i], g.min, g.unit, stream, i));
    }
    ++step;
  }
};

}  // namespace gradcomp
