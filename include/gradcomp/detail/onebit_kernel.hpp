#pragma once
// onebit's reference (exec::seq), as the paper states it: per block, the bit of each element
// (x_i < 0) and the mean of each of the two groups it defines (detail/group_means.hpp).
#include <cstddef>
#include <span>

#include "../payload/two_level.hpp"
#include "group_means.hpp"
#include "sign_kernel.hpp"

namespace gradcomp::detail {

/// out = per block of b elements (the last may be shorter): low = -(sum of |x_i| over the
/// negatives) / (their count), high = (sum of x_i over the others) / (their count), each summed
/// in the fixed order, rescued on overflow and rounded once to T, 0 for an empty group; and one
/// bit per element, set when x_i < 0 (so -0 and NaN decode to the high, and a NaN makes its
/// block's high NaN, which the receiver sees).
template <class T>
void onebit_compress(std::span<const T> x, std::size_t b, two_level_vector<T>& out) {
  out.reset(x.size(), b);
  for (std::size_t block = 0; block < out.blocks(); ++block) {
    const std::size_t begin = block * b;
    const std::span<const T> elements = x.subspan(begin, x.size() - begin < b ? x.size() - begin : b);
    out.lows[block] = two_level_low<T>(group_mean(elements, true));
    out.highs[block] = two_level_high<T>(group_mean(elements, false));
  }
  pack_sign_bits(x, out.negative.data());
}

}  // namespace gradcomp::detail
