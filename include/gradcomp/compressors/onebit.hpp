#pragma once
// onebit: 1-bit SGD (Seide et al. 2014, "1-bit stochastic gradient descent and its application
// to data-parallel distributed training of speech DNNs"), as GRACE implements it: per block,
// one bit per element (negative or not) and the mean of each of the two groups.
// A delta-contraction with delta = 1/min(B, d).
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <limits>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/onebit_kernel.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/two_level.hpp"

namespace gradcomp {

/// Element i of a block decodes to the mean of its group: low = -(S0 / n0) if x_i < 0, else
/// high = S1 / n1, where S0 (S1) sums |x_i| over the n0 negatives (the n1 others: zeros of
/// either sign and NaN count here) of the block; a group with no element sends 0.
///
/// The bound. The decode is the orthogonal projection of the block onto span{1_neg, 1_nonneg}
/// (a group's mean is the constant nearest to it), so the error is what the projection drops:
///     ||x_b - C(x_b)||^2 = ||x_b||^2 - (S0^2 / n0 + S1^2 / n1),
/// and by Cauchy-Schwarz S0^2 / n0 + S1^2 / n1 >= (S0 + S1)^2 / (n0 + n1) = ||x_b||_1^2 / n_b
/// >= ||x_b||^2 / n_b. Each block of n_b <= min(B, d) elements keeps at least a fraction
/// 1/min(B, d) of its energy: delta = 1/min(B, d). The middle term is what blockwise_sign
/// (scaled_sign for one block) keeps, so onebit's error is never larger than theirs on the same
/// blocks. (Up to the rounding of the two means to T.)
///
/// No error feedback inside: 1-bit SGD's error feedback is gc::error_feedback<onebit>.
struct onebit {
  static constexpr std::string_view name = "onebit";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  /// The default block size: one block of the whole vector (GRACE's OneBit).
  static constexpr std::size_t whole = std::numeric_limits<std::size_t>::max();

  std::size_t block_size = whole;  // elements per (low, high) pair, >= 1

  template <std::floating_point T>
  using payload_type = two_level_vector<T>;

  void validate() const {
    if (block_size == 0)
      detail::fail("onebit", "block_size must be >= 1 (got 0; the default, onebit::whole, is one block of the whole "
                             "vector)");
  }

  double delta(std::size_t d) const {
    const std::size_t widest = std::min(block_size, d);
    return widest == 0 ? 1.0 : 1.0 / static_cast<double>(widest);
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, two_level_vector<T>& out) const {
    validate();
    detail::onebit_compress(x, block_size, out);
  }
};

}  // namespace gradcomp
