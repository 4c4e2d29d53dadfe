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

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, quantized_vector<T>& out) {
    validate();
    const double norm = detail::l2_norm(x);
    if (!std::isfinite(norm)) {
      detail::require_finite(x, "qsgd");
      detail::fail("qsgd", "||x||_2 overflows double");
    }
    const T scale = static_cast<T>(norm / static_cast<double>(s));
    if (!std::isfinite(scale)) detail::fail("qsgd", "scale ||x|| / s overflows the value type");

    out.dim = x.size();
    out.scale = scale;
    out.levels.resize(x.size());
    const detail::counter_stream stream(seed, step);
    std::uint32_t coded_or = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      std::int32_t level = 0;
      if (scale > T(0)) {  // scale == 0 only for x == 0, or ||x|| / s below T's smallest subnormal
        const double r = std::fabs(static_cast<double>(x[i])) / static_cast<double>(scale);
        double l = std::floor(r);
        if (stream.uniform(i) < r - l) l += 1.0;
        level = static_cast<std::int32_t>(x[i] < T(0) ? -l : l);
      }
      out.levels[i] = level;
      coded_or |= detail::zigzag(level);
    }
    out.level_bits = detail::bits_to_hold(coded_or);
    ++step;
  }
};

}  // namespace gradcomp
