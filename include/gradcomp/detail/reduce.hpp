#pragma once
// Sums with a fixed evaluation order, so every back end can reproduce them bit for bit.
//
// Floating-point addition is not associative: a parallel or SIMD sum differs from a
// left-to-right loop in the last bits. Scales of sign compressors, QSGD norms and EF
// error totals must be identical on every back end, so the reference fixes the order as
// one binary tree, built to be computed in parallel by SIMD lanes, threads and GPU warps:
//
//   * the input is cut into blocks of reduction_block = 4096 elements (the last may be
//     shorter);
//   * a block is a matrix of 512 rows and 8 lanes: element i is in row i / 8, lane i % 8.
//     Each lane is summed over the rows by a pairwise tree (rows 0..255 and 256..511 summed
//     separately and added, and so on down to single rows), and the eight lane sums are
//     folded as ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)), the usual halving of a register;
//   * the block sums are added by a pairwise tree over the blocks.
//
// Pairwise trees are taken over a power of two of leaves, the missing ones (past the end of
// a short block, past the last block) being zero. Every summand here is >= 0 or NaN (|x|,
// x^2), so adding a zero changes nothing, and a subtree of zeros may simply be skipped: a
// short block costs what its elements cost.
//
// Why this tree: a SIMD register holds a row (or part of one), so the row tree is vertical
// adds of registers with many independent chains (no add-latency bound, unlike one running
// sum per lane); any aligned group of rows or blocks is a subtree that a thread or a GPU
// warp can sum on its own; and a pairwise sum's rounding error grows with log n, not n.
//
// mean_abs and l2_norm add one rule for double input, whose sums can overflow (or whose
// squares can underflow) although the result fits: when the plain sum is out of range they
// sum again on x * 2^-e, with 2^e the power of two just above max |x| (exact scaling), and
// scale the result back.
#include <array>
#include <bit>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <span>

#include "host_device.hpp"
#include "strict_fp.hpp"

namespace gradcomp::detail {

inline constexpr std::size_t reduction_block = 4096;
inline constexpr std::size_t reduction_lanes = 8;
inline constexpr std::size_t reduction_rows = reduction_block / reduction_lanes;

/// The pairwise tree over leaf(first), leaf(first + 1), ..., leaf(first + size - 1) where
/// size is a power of two and leaves at or past `end` are zero (and skipped).
template <class Leaf>
GRADCOMP_NO_FP_CONTRACT double pairwise_tree(std::size_t first, std::size_t size, std::size_t end, Leaf& leaf) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  if (size == 1) return leaf(first);
  const std::size_t half = size / 2;
  if (first + half >= end) return pairwise_tree(first, half, end, leaf);  // the right half is all zero
  return pairwise_tree(first, half, end, leaf) + pairwise_tree(first + half, half, end, leaf);
}

/// leaf(0) + ... + leaf(n - 1) by the pairwise tree over n leaves (zero-padded to a power
/// of two). Leaves must be >= 0 or NaN.
template <class Leaf>
double pairwise_sum(std::size_t n, Leaf&& leaf) {
  return n == 0 ? 0.0 : pairwise_tree(0, std::bit_ceil(n), n, leaf);
}

/// The pairwise tree over leaves pushed one at a time, left to right, in O(levels) memory: a
/// binary counter of partial sums, where pushing leaf j adds together the completed subtrees
/// that j closes (left + right, as pairwise_tree adds them). After 2^L pushes (leaves past the
/// end pushed as zero) result() has pairwise_tree's bits over those 2^L leaves. A GPU thread
/// or a SIMD lane sums an aligned run of rows or blocks with it (__host__ __device__, so the
/// CPU tests check it against pairwise_tree).
template <int MaxLevels>
struct pairwise_accumulator {
  double partial[MaxLevels + 1];
  unsigned depth = 0;
  unsigned long long count = 0;

  GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD void push(double leaf) {
    GRADCOMP_NO_FP_CONTRACT_BODY
    for (unsigned long long c = count; c & 1; c >>= 1) leaf = partial[--depth] + leaf;
    partial[depth++] = leaf;
    ++count;
  }
  /// The sum, once a power of two of leaves has been pushed.
  GRADCOMP_HD double result() const { return count == 0 ? 0.0 : partial[0]; }
};

/// Sum of leaf(i) over the aligned run of `count` (a power of two) leaves from `first`,
/// leaves at or past `end` being zero: a subtree of every pairwise tree that contains the run.
/// Each GPU thread of the CUDA back end's sums runs this on its rows or blocks.
template <int MaxLevels, class Leaf>
GRADCOMP_HD double aligned_run_sum(const Leaf& leaf, std::size_t first, std::size_t count, std::size_t end) {
  pairwise_accumulator<MaxLevels> acc;
  for (std::size_t j = 0; j < count; ++j) acc.push(first + j < end ? leaf(first + j) : 0.0);
  return acc.result();
}

/// The reference fold of the eight lane sums.
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD inline double fold_lanes(const double* lane) noexcept {
  GRADCOMP_NO_FP_CONTRACT_BODY
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}
GRADCOMP_NO_FP_CONTRACT inline double fold_lanes(const std::array<double, reduction_lanes>& lane) noexcept {
  return fold_lanes(lane.data());
}

/// Sum of f(x_i) over one block (at most reduction_block elements): per lane, the pairwise
/// tree over the block's rows; then the lanes folded.
template <class T, class F>
double block_sum(std::span<const T> block, F f) {
  const std::size_t rows = (block.size() + reduction_lanes - 1) / reduction_lanes;
  std::array<double, reduction_lanes> lane;
  for (std::size_t l = 0; l < reduction_lanes; ++l)
    lane[l] = pairwise_sum(rows, [&](std::size_t r) {
      const std::size_t i = r * reduction_lanes + l;
      return i < block.size() ? f(block[i]) : 0.0;
    });
  return fold_lanes(lane);
}

/// Sum of f(x_i) over x: the pairwise tree over the block sums.
template <class T, class F>
double ordered_sum(std::span<const T> x, F f) {
  const std::size_t blocks = (x.size() + reduction_block - 1) / reduction_block;
  return pairwise_sum(blocks, [&](std::size_t b) {
    const std::size_t begin = b * reduction_block;
    return block_sum(x.subspan(begin, std::min(reduction_block, x.size() - begin)), f);
  });
}

/// The summand of l1_norm, in double.
template <class T>
GRADCOMP_HD double abs_summand(T v) noexcept {
  return std::fabs(static_cast<double>(v));
}

/// The summand of squared_norm: for float input every square is exact in double.
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD double square_summand(T v) noexcept {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const double w = static_cast<double>(v);
  return w * w;
}

/// ||x||_1 in double, fixed order.
template <class T>
double l1_norm(std::span<const T> x) {
  return ordered_sum(x, [](T v) { return abs_summand(v); });
}

/// ||x||_2^2 in double, fixed order.
template <class T>
double squared_norm(std::span<const T> x) {
  return ordered_sum(x, [](T v) { return square_summand(v); });
}

/// max |x_i| (0 for empty x), for finite x. The maximum is exact and does not depend on the
/// order it is taken in, so every back end gets these bits however it splits x.
template <class T>
T max_abs(std::span<const T> x) noexcept {
  T largest = T(0);
  for (const T v : x) largest = std::max(largest, std::fabs(v));
  return largest;
}

/// The exponent e with largest * 2^-e in [0.5, 1), for a finite largest > 0.
GRADCOMP_HD inline int exponent_of(double largest) noexcept {
  int e = 0;
  (void)std::frexp(largest, &e);
  return e;
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
  return exponent_of(largest);
}

/// The summand of mean_abs's rescue: |v| * 2^-shift, exact unless it underflows.
template <class T>
GRADCOMP_HD double scaled_abs_summand(T v, int shift) noexcept {
  return std::ldexp(std::fabs(static_cast<double>(v)), -shift);
}

/// mean_abs's rescued mean from the scaled sum over n entries.
GRADCOMP_HD inline double rescued_mean(double scaled_sum, double n, int shift) noexcept {
  return std::ldexp(scaled_sum / n, shift);
}

/// mean_abs given sum = l1_norm(x) (for back ends that computed the sum their own way):
/// sum / n, or, when the sum overflowed, the rescaled sum.
template <class T>
double mean_abs_from_l1(double sum, std::span<const T> x) {
  const double n = static_cast<double>(x.size());
  if (!std::isinf(sum)) return sum / n;  // the usual case (NaN input stays NaN)
  // A float block cannot overflow a double sum (2^64 * FLT_MAX < DBL_MAX): an infinite sum
  // means an Inf in the input, and the rescue below would return +Inf too.
  if constexpr (sizeof(T) == 4) return sum / n;
  const auto e = max_exponent(x);
  if (!e) return sum / n;  // the infinity is in the input
  const int shift = *e;
  const double scaled = ordered_sum(x, [shift](T v) { return scaled_abs_summand(v, shift); });
  return rescued_mean(scaled, n, shift);
}

/// ||x||_1 / n for the n = x.size() > 0 entries of x, finite whenever the true mean is.
template <class T>
double mean_abs(std::span<const T> x) {
  return mean_abs_from_l1(l1_norm(x), x);
}

/// The summand of l2_norm's rescue: (v * 2^-shift)^2.
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD double scaled_square_summand(T v, int shift) noexcept {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const double w = std::ldexp(static_cast<double>(v), -shift);
  return w * w;
}

/// Does l2_norm need its rescue for this sum of squares? Below 2^-900 some squares may have
/// underflowed (only possible for double input); above DBL_MAX the sum overflowed.
GRADCOMP_HD inline bool l2_needs_rescue(double sum) noexcept {
  return !(std::isnan(sum) || (sum >= 0x1p-900 && !std::isinf(sum)));
}

/// l2_norm from its parts, for back ends that compute them their own way: the sum of squares;
/// shift(), max_exponent(x); scaled_sum(e), the ordered sum of scaled_square_summand(x_i, e).
/// The last two are asked for only when the sum needs the rescue.
template <class Shift, class ScaledSum>
double l2_norm_from_parts(double sum, Shift&& shift, ScaledSum&& scaled_sum) {
  if (!l2_needs_rescue(sum)) return std::sqrt(sum);
  const std::optional<int> e = shift();
  if (!e) return std::sqrt(sum);  // all zero, or the infinity is in the input
  return std::ldexp(std::sqrt(scaled_sum(*e)), *e);
}

/// l2_norm given sum = squared_norm(x) (for back ends that computed the sum their own way).
template <class T>
double l2_norm_from_squares(double sum, std::span<const T> x) {
  return l2_norm_from_parts(
      sum, [&] { return max_exponent(x); },
      [&](int shift) { return ordered_sum(x, [shift](T v) { return scaled_square_summand(v, shift); }); });
}

/// ||x||_2, without overflow or underflow of the squares when the norm itself fits.
template <class T>
double l2_norm(std::span<const T> x) {
  return l2_norm_from_squares(squared_norm(x), x);
}

}  // namespace gradcomp::detail
