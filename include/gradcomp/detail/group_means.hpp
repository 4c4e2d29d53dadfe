#pragma once
// onebit's two means per block, written once for every back end.
//
// A block's elements fall into two groups by detail::sign_bit_of: the negatives, and the rest
// (zeros of either sign and NaN count as non-negative, as in every sign payload). A group's
// mean magnitude is the sum of its |x_i| divided by its count, the sum taken in detail/
// reduce.hpp's fixed order over the *whole block* with a masked leaf: |x_i| for an element of
// the group, +0 for the others. So a back end sums a group with the very tree it uses for a
// block's L1 norm (blockwise_sign), every summand still >= 0 or NaN; and group_count_summand
// lets it count the negatives with the same machinery, exactly (a sum of ones and zeros).
//
// A group with no element has mean 0. For double input a group sum can overflow although its
// mean fits; then, as in detail::mean_abs, the sum is taken again on |x_i| * 2^-e, with 2^e the
// power of two just above the group's largest finite |x_i|, and scaled back.
#include <cmath>
#include <cstddef>
#include <optional>
#include <span>

#include "element_rules.hpp"
#include "host_device.hpp"
#include "reduce.hpp"

namespace gradcomp::detail {

/// The leaf of a group's sum: |v| in double if v is in the group (negatives: sign_bit_of(v);
/// otherwise its complement), +0 if not.
template <class T>
GRADCOMP_HD double group_abs_summand(T v, bool negatives) noexcept {
  return sign_bit_of(v) == negatives ? abs_summand(v) : 0.0;
}

/// The leaf of a group's rescued sum: |v| * 2^-shift for v in the group, +0 if not.
template <class T>
GRADCOMP_HD double group_scaled_abs_summand(T v, bool negatives, int shift) noexcept {
  return sign_bit_of(v) == negatives ? scaled_abs_summand(v, shift) : 0.0;
}

/// The leaf of the count of negatives, for back ends that count with their sum kernels: 1 for
/// a negative v, +0 otherwise. Their sum is exact (an integer below 2^53).
template <class T>
GRADCOMP_HD double group_count_summand(T v) noexcept {
  return sign_bit_of(v) ? 1.0 : 0.0;
}

/// The number of elements of x in the group.
template <class T>
std::size_t group_count(std::span<const T> x, bool negatives) {
  std::size_t n = 0;
  for (const T v : x) n += sign_bit_of(v) == negatives;
  return n;
}

/// max_exponent over the group's finite nonzero entries: e with max |x_i| * 2^-e in [0.5, 1);
/// nullopt when there are none.
template <class T>
std::optional<int> group_max_exponent(std::span<const T> x, bool negatives) {
  double largest = 0.0;
  for (const T v : x) {
    const double a = std::fabs(static_cast<double>(v));
    if (sign_bit_of(v) == negatives && std::isfinite(a) && a > largest) largest = a;
  }
  if (largest == 0.0) return std::nullopt;
  return exponent_of(largest);
}

/// Whether a group's plain sum needs the rescue: it overflowed, and the input is double (a float
/// group cannot overflow a double sum: an infinite one means an Inf in the input).
template <class T>
GRADCOMP_HD bool group_needs_rescue(double sum) noexcept {
  return sizeof(T) == 8 && std::isinf(sum);
}

/// A group's mean from its plain sum and count: sum / count, and 0 for an empty group.
GRADCOMP_HD inline double group_mean_of(double sum, double count) noexcept {
  return count == 0.0 ? 0.0 : sum / count;
}

/// The group's mean magnitude given sum, its ordered sum of group_abs_summand over the block x,
/// and count, its number of elements (for back ends that computed both their own way): the
/// plain mean, or the rescued one.
template <class T>
double group_mean_from_sum(double sum, std::span<const T> x, bool negatives, std::size_t count) {
  const double n = static_cast<double>(count);
  if (!group_needs_rescue<T>(sum)) return group_mean_of(sum, n);  // the usual case (NaN stays NaN)
  const std::optional<int> e = group_max_exponent(x, negatives);
  if (!e) return group_mean_of(sum, n);  // the infinity is in the input
  const int shift = *e;
  const double scaled =
      ordered_sum(x, [negatives, shift](T v) { return group_scaled_abs_summand(v, negatives, shift); });
  return rescued_mean(scaled, n, shift);
}

/// The group's mean magnitude over the block x: (sum of |x_i| over the group) / (its count) in
/// the fixed order, finite whenever the true mean is; 0 for an empty group.
template <class T>
double group_mean(std::span<const T> x, bool negatives) {
  const double sum = ordered_sum(x, [negatives](T v) { return group_abs_summand(v, negatives); });
  return group_mean_from_sum(sum, x, negatives, group_count(x, negatives));
}

/// The low a block sends: minus the negatives' mean, rounded once to T (0 - mean, so an empty
/// group gives +0, not -0).
template <class T>
GRADCOMP_HD T two_level_low(double negatives_mean) noexcept {
  return static_cast<T>(0.0 - negatives_mean);
}

/// The high a block sends: the non-negatives' mean, rounded once to T.
template <class T>
GRADCOMP_HD T two_level_high(double nonnegatives_mean) noexcept {
  return static_cast<T>(nonnegatives_mean);
}

}  // namespace gradcomp::detail
