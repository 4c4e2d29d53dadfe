#pragma once
// The element formulas that every back end must reproduce bit for bit, each written once.
// The sequential reference loops call them, and so do the scalar tails of the SIMD kernels;
// a SIMD lane or a GPU thread computes the same operations in the same order.
//
// Each is marked GRADCOMP_NO_FP_CONTRACT: the roundings are part of the definition, and a
// compiler that fused a * b + c into an FMA on one back end only would break bit-identity.
// (Callers in kernels carry the same mark, so these inline into them.)
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "host_device.hpp"
#include "random.hpp"
#include "strict_fp.hpp"

namespace gradcomp::detail {

/// The error-feedback input p = e + scale * g: two roundings, and exactly e + g when scale is
/// 1 (the product is skipped, so a NaN scale never reaches a unit-scale step).
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD inline T feedback_element(T e, T g, T scale) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  return scale == T(1) ? e + g : e + scale * g;
}

/// dense + alpha * value: how every payload adds a decoded element (two roundings).
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD inline T add_scaled(T dense, T alpha, T value) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  return dense + alpha * value;
}

/// A sign payload's decoded element: its block's scale s, negated where the sign bit is set.
template <class T>
GRADCOMP_HD constexpr T signed_scale(T s, bool negative) noexcept {
  return negative ? -s : s;
}

/// The sign bit a sign payload stores for x: set iff x < 0 (so -0 and NaN count as positive).
template <class T>
GRADCOMP_HD constexpr bool sign_bit_of(T x) noexcept {
  return x < T(0);
}

/// A two-level payload's decoded element (onebit): its block's low where the sign bit is set,
/// its high elsewhere.
template <class T>
GRADCOMP_HD constexpr T two_level_value(T low, T high, bool negative) noexcept {
  return negative ? low : high;
}

/// p = e + scale * g over spans: the reference loop of the error-feedback input.
template <class T>
void feedback_input(std::span<const T> e, std::span<const T> g, T scale, std::span<T> p) {
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = feedback_element(e[i], g[i], scale);
}

/// Stochastic rounding of r >= 0 or < 0 with the uniform draw u in [0, 1): floor(r), or
/// floor(r) + 1 when u < r - floor(r) (so E = r).
GRADCOMP_HD inline double stochastic_round(double r, double u) noexcept {
  double l = std::floor(r);
  if (u < r - l) l += 1.0;
  return l;
}

/// QSGD's level of x for scale > 0 (a positive normal or subnormal value of T, as a double):
/// sign(x) * stochastic_round(|x| / scale) with element i's draw.
template <class T>
GRADCOMP_HD std::int32_t qsgd_level(T x, double scale, const counter_stream& stream, std::size_t i) noexcept {
  const double l = stochastic_round(std::fabs(static_cast<double>(x)) / scale, stream.uniform(i));
  return static_cast<std::int32_t>(x < T(0) ? -l : l);
}

/// Natural dithering's level of x for scale > 0 (Horvath et al. 2019): r = |x| / scale rounded
/// stochastically to a neighbouring level of {0, 1, 2, 4, 8, ...} with element i's draw, so
/// E level = r: below 1 to 0 or 1 (upper with probability r); in [2^j, 2^(j+1)) to 2^j or
/// 2^(j+1) (upper with probability r / 2^j - 1, exact in double). The result is signed as x.
template <class T>
GRADCOMP_HD std::int32_t natural_level(T x, double scale, const counter_stream& stream, std::size_t i) noexcept {
  const double r = std::fabs(static_cast<double>(x)) / scale;
  const double u = stream.uniform(i);
  double l;
  if (r < 1.0) {
    l = u < r ? 1.0 : 0.0;
  } else {
    int e;
    (void)std::frexp(r, &e);                // r = m 2^e with m in [1/2, 1): 2^(e-1) <= r < 2^e
    const double low = std::ldexp(1.0, e - 1);
    l = u < r / low - 1.0 ? 2.0 * low : low;
  }
  return static_cast<std::int32_t>(x < T(0) ? -l : l);
}

/// grid_rounding's level of x on the grid of spacing q: x / q rounded to nearest (half away
/// from zero), or stochastically with element i's draw.
template <class T>
GRADCOMP_HD std::int32_t grid_level(T x, double q, bool stochastic, const counter_stream& stream, std::size_t i) noexcept {
  const double r = static_cast<double>(x) / q;
  return static_cast<std::int32_t>(stochastic ? stochastic_round(r, stream.uniform(i)) : std::round(r));
}

}  // namespace gradcomp::detail
