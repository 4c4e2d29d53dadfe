#pragma once
// The sign kernels shared by sign, scaled_sign and blockwise_sign.
#include <cstddef>
#include <cstdint>
#include <span>

#include "../payload/sign.hpp"
#include "element_rules.hpp"
#include "reduce.hpp"

namespace gradcomp::detail {

/// Sets bit i of words (ceil(|x| / 64) of them, cleared beforehand) for every x_i < 0
/// (detail::sign_bit_of): the bits of every sign and two-level payload.
template <class T>
void pack_sign_bits(std::span<const T> x, std::uint64_t* words) {
  for (std::size_t i = 0; i < x.size(); ++i)
    if (sign_bit_of(x[i])) words[i / 64] |= std::uint64_t{1} << (i % 64);
}

/// Sets bit i of out.negative (cleared beforehand) for every x_i < 0.
template <class T>
void pack_sign_bits(std::span<const T> x, sign_vector<T>& out) {
  pack_sign_bits(x, out.negative.data());
}

/// out = per block of b elements: scale = ||x_block||_1 / |block| (detail::mean_abs: the
/// fixed summation order, overflow-safe, rounded once to T), and one bit per element set when
/// x_i < 0 (so sign(0) = sign(-0) = +1, and NaN counts as +1).
template <class T>
void sign_compress(std::span<const T> x, std::size_t b, sign_vector<T>& out) {
  out.reset(x.size(), b);
  for (std::size_t block = 0; block < out.blocks(); ++block) {
    const std::size_t begin = block * b;
    const std::size_t n = x.size() - begin < b ? x.size() - begin : b;
    out.scales[block] = static_cast<T>(mean_abs(x.subspan(begin, n)));
  }
  pack_sign_bits(x, out);
}

}  // namespace gradcomp::detail
