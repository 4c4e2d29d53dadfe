#pragma once
// The formulas of bucketed max-min quantization (compressors/maxmin_quantizer.hpp), each
// written once: the reference loop and every back end call them.
//
// Per bucket: its extremes (lo, hi), the range D = hi - lo in double, the grid unit (the
// smallest T with unit * L >= D) and, per element, a level in [0, L]. The decoding formula,
// min + unit * level, is detail::maxmin_value (payload/bucket_quantized.hpp).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

#include "element_rules.hpp"
#include "host_device.hpp"
#include "random.hpp"
#include "strict_fp.hpp"

namespace gradcomp::detail {

/// The smallest and the largest value of a bucket of finite values. Zeros are stored as +0:
/// min(-0, +0) would otherwise depend on the order a back end compares in, and the bucket's
/// min goes on the wire.
template <class T>
struct bucket_extremes {
  T lo;
  T hi;
};

/// A zero of either sign as +0; any other value unchanged.
template <class T>
GRADCOMP_HD constexpr T positive_zero(T v) noexcept {
  return v == T(0) ? T(0) : v;
}

/// The extremes of a non-empty bucket of finite values (the reference loop).
template <class T>
bucket_extremes<T> extremes_of(std::span<const T> bucket) noexcept {
  T lo = bucket[0], hi = bucket[0];
  for (const T v : bucket) {
    if (v < lo) lo = v;
    if (hi < v) hi = v;
  }
  return {positive_zero(lo), positive_zero(hi)};
}

/// The range hi - lo in double, rounded once (for float it is exact unless their exponents
/// are more than 28 apart). Every level is computed against this same rounded value.
template <class T>
GRADCOMP_HD inline double bucket_range(T lo, T hi) noexcept {
  return static_cast<double>(hi) - static_cast<double>(lo);
}

/// Whether unit * L >= range holds exactly (real arithmetic). For float the product of a
/// 24-bit unit and a level of at most 8 bits is exact in double; for double the fused
/// multiply-add rounds the exact difference once, which keeps its sign.
template <class T>
GRADCOMP_HD inline bool unit_covers(T unit, std::uint32_t top, double range) noexcept {
  if constexpr (sizeof(T) == 4)
    return static_cast<double>(unit) * static_cast<double>(top) >= range;
  else
    return std::fma(static_cast<double>(unit), static_cast<double>(top), -range) >= 0.0;
}

/// The grid unit of a bucket whose range is `range` (>= 0, or +inf) with top level L: the
/// smallest value u of T with u * L >= range, exactly; 0 for a constant bucket; +inf when no
/// finite T is large enough.
///
/// Rounding up is what keeps every level at most L: for x in the bucket, lo <= x <= hi, so
/// fl(x - lo) <= fl(hi - lo) = range (rounding is monotone), and range / u <= L exactly, so
/// fl(fl(x - lo) / u) <= L (L is a double). Its price: u exceeds range / L by less than one ulp
/// of T (a relative 2^-23 for a normal float unit), which maxmin_quantizer::omega accounts for.
template <class T>
GRADCOMP_HD inline T maxmin_unit(double range, std::uint32_t top) noexcept {
  constexpr T inf = std::numeric_limits<T>::infinity();
  if (!(range > 0.0)) return T(0);
  const double target = range / static_cast<double>(top);
  if (!(target <= static_cast<double>(std::numeric_limits<T>::max()))) return inf;  // also range = inf
  T u = static_cast<T>(target);  // within an ulp or two of the answer
  while (!unit_covers(u, top, range)) u = std::nextafter(u, inf);
  while (u > T(0) && unit_covers(std::nextafter(u, T(0)), top, range)) u = std::nextafter(u, T(0));
  return u;
}

/// The level of x (lo <= x <= hi) in a bucket with minimum lo and grid unit `unit`:
/// stochastic_round((x - lo) / unit) with element i's draw, computed in double; in [0, L] when
/// unit = maxmin_unit(bucket_range(lo, hi), L). A constant bucket (unit 0) gives 0.
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD inline std::uint32_t maxmin_level(T x, T lo, T unit, const counter_stream& stream,
                                                                      std::size_t i) noexcept {
  GRADCOMP_NO_FP_CONTRACT_BODY
  if (!(unit > T(0))) return 0;
  const double r = (static_cast<double>(x) - static_cast<double>(lo)) / static_cast<double>(unit);
  return static_cast<std::uint32_t>(stochastic_round(r, stream.uniform(i)));
}

}  // namespace gradcomp::detail
