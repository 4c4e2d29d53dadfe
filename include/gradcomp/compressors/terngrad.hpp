#pragma once
// TernGrad (Wen et al. 2017): stochastic rounding to {-s, 0, +s} with s = max |x_i|. Unbiased.
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/finite.hpp"
#include "../detail/random.hpp"
#include "../detail/reduce.hpp"
#include "../execution.hpp"
#include "../payload/quantized.hpp"
#include "qsgd.hpp"

namespace gradcomp {

/// C(x)_i = s * sign(x_i) * b_i with s = max_i |x_i| and b_i ~ Bernoulli(|x_i| / s): QSGD's
/// level rule (detail::qsgd_level, draw i of the (seed, step) stream) with the infinity norm
/// as the scale, so every level is -1, 0 or +1 and a message is one scale and 2 bits per
/// element. E C(x) = x, and
///     E||C(x) - x||^2 = sum_i (s |x_i| - x_i^2) = s ||x||_1 - ||x||^2 <= (sqrt(d) - 1) ||x||^2,
/// since s <= ||x||_2 and ||x||_1 <= sqrt(d) ||x||_2: omega = sqrt(d) - 1. (The paper's layer-
/// wise scaling is one compressor per tensor: compress_layers; its gradient clipping is a
/// separate step.) The scale is an input entry, so every level decodes to a finite value.
/// NaN or Inf input is rejected. step advances on every successful call.
struct terngrad {
  static constexpr std::string_view name = "terngrad";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  std::uint64_t seed = 0;
  std::uint64_t step = 0;

  template <std::floating_point T>
  using payload_type = quantized_vector<T>;

  double omega(std::size_t d) const { return d == 0 ? 0.0 : std::sqrt(static_cast<double>(d)) - 1.0; }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, quantized_vector<T>& out) {
    detail::require_finite(x, "terngrad");
    detail::stochastic_levels(x, detail::max_abs(x), detail::counter_stream(seed, step), out);
    ++step;
  }
};

}  // namespace gradcomp
