#pragma once
// Top-k's output rule once T (the k-th largest magnitude key) is known: keep key > T, and
// keys == T while a tie quota lasts, so ties go to the lowest indices. The reference
// (compressors/top_k.hpp) applies it to the whole input; exec::par applies it per chunk with
// each chunk's share of the quota, and its vector kernel (simd/select-inl.hpp) uses this loop
// for tails.
#include <cstddef>

#include "../detail/bits.hpp"
#include "abi.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// Writes the entries j of x[0, n) with key > threshold, and those == threshold while
/// ties_left lasts (decrementing it), as (index_of(j), x[j]) to idx / val; returns how many.
template <class T, class Index, class IndexOf>
std::size_t keep_top_scalar(const T* x, std::size_t n, gradcomp::detail::uint_of<T> threshold, std::size_t& ties_left,
                            IndexOf&& index_of, Index* idx, T* val) {
  std::size_t w = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const auto key = gradcomp::detail::magnitude_key(x[j]);
    if (key > threshold || (key == threshold && ties_left > 0)) {
      ties_left -= key == threshold;
      idx[w] = static_cast<Index>(index_of(j));
      val[w] = x[j];
      ++w;
    }
  }
  return w;
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
