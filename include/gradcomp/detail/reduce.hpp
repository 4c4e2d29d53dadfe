#pragma once
// Sums with a fixed evaluation order, so every back end can reproduce them bit for bit.
//
// Floating-point addition is not associative: a parallel or SIMD sum differs from a
// left-to-right loop in the last bits. Scales of sign compressors, QSGD norms and EF
// error totals must be identical on every back end, so the reference fixes the order:
//   * the input is cut into blocks of reduction_block elements (the last may be shorter);
//   * inside a block, element i goes to double accumulator i % 8 (eight interleaved
//     lanes, one AVX-512 register of doubles, two AVX2 registers);
//   * the lanes are folded as ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)), the usual
//     halving of a vector register;
//   * block sums are added left to right.
// A parallel back end computes block sums independently and adds them in block order.
//
// mean_abs and l2_norm add one rule for double input, whose sums can overflow (or whose
// squares can underflow) although the result fits: when the plain sum is out of range they
// sum again on x * 2^-e, with 2^e the power of two just above max |x| (exact scaling), and
// scale the result back.
#include <array>
#include <cmath>
#include <cstddef>
#include <optional>
#include <span>

#include "strict_fp.hpp"

namespace gradcomp::detail {

inline constexpr std::size_t reduction_block = 4096;
inline constexpr std::size_t reduction_lanes = 8;

/// Sum of f(x_i) over one block (at most reduction_block elements), in the fixed lane order.
template <class T, class F>
GRADCOMP_NO_FP_CONTRACT double block_sum(std::span<const T> block, F f) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::array<double, reduction_lanes> lane{};
  for (std::size_t i = 0; i < block.size(); ++i) lane[i % reduction_lanes] += f(block[i]);
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

/// Sum of f(x_i) over x: block sums added in block order.
template <class T, class F>
double ordered_sum(std::span<const T> x, F f) {
  double total = 0.0;
  for (std::size_t begin = 0; begin < x.size(); begin += reduction_block) {
    const std::size_t n = x.size() - begin < reduction_block ? x.size() - begin : reduction_block;
    total += block_sum(x.subspan(begin, n), f);
  }
  return total;
}

/// ||x||_1 in double, fixed order.
template <class T>
double l1_norm(std::span<const T> x) {
  return ordered_sum(x, [](T v) { return std::fabs(static_cast<double>(v)); });
}

/// ||x||_2^2 in double, fixed order. For float input every square is exact in double.
template <class T>
double squared_norm(std::span<const T> x) {
  return ordered_sum(x, [](T v) {
    const double w = static_cast<double>(v);
    return w * w;
  });
}

/// The exponent e with max |x_i| * 2^-e in [0.5, 1), over the finite nonzero entries;
/// nullopt when there are none.
template <class T>
std::optional<int> max_exponent(std::span<const T> x) {
  double largest = 0.0;
  for (const T v : x) {
    const double a = std::fabs(static_cast<double>(v));
    if (std::isfinite(a) && a > largest) largest = a;
  }
  if (largest == 0.0) return std::nullopt;
  int e = 0;
  (void)std::frexp(largest, &e);
  return e;
}

/// ||x||_1 / n for the n = x.size() > 0 entries of x, finite whenever the true mean is.
template <class T>
double mean_abs(std::span<const T> x) {
  const double n = static_cast<double>(x.size());
  const double sum = l1_norm(x);
  if (!std::isinf(sum)) return sum / n;  // the usual case (NaN input stays NaN)
  const auto e = max_exponent(x);
  if (!e) return sum / n;  // the infinity is in the input
  const int shift = *e;
  const double scaled = ordered_sum(x, [shift](T v) { return std::ldexp(std::fabs(static_cast<double>(v)), -shift); });
  return std::ldexp(scaled / n, shift);
}

/// ||x||_2, without overflow or underflow of the squares when the norm itself fits.
template <class T>
double l2_norm(std::span<const T> x) {
  const double sum = squared_norm(x);
  // Below 2^-900 some squares may have underflowed (only possible for double input).
  if (std::isnan(sum) || (sum >= 0x1p-900 && !std::isinf(sum))) return std::sqrt(sum);
  const auto e = max_exponent(x);
  if (!e) return std::sqrt(sum);  // all zero, or the infinity is in the input
  const int shift = *e;
  const double scaled = ordered_sum(x, [shift](T v) {
    const double w = std::ldexp(static_cast<double>(v), -shift);
    return w * w;
  });
  return std::ldexp(std::sqrt(scaled), shift);
}

}  // namespace gradcomp::detail
