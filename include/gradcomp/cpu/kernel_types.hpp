#pragma once
// The plain data the SIMD kernels (cpu/simd/*-inl.hpp) take and fill: target-independent
// types, defined once outside the per-target namespaces.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "../detail/bits.hpp"
#include "tuning.hpp"
#include "abi.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

using gradcomp::detail::magnitude_key;
using gradcomp::detail::uint_of;

/// What one compaction kernel call produced for one block of at most tuning::compact::block
/// elements: the kept elements' offsets within the block and their values, in order. The
/// slack takes the whole vector a compress-store writes past the last kept element.
template <class T>
struct compact_buffer {
  static constexpr std::size_t capacity = tuning::compact::block + tuning::compact::slack;
  std::array<uint_of<T>, capacity> offsets;
  std::array<T, capacity> values;
};

/// The error-feedback input of one block: p = e + scale * g is formed as the kernel reads,
/// and written to e_new (the new residual) as the kernel decides what it keeps.
template <class T>
struct feedback_block {
  const T* e;
  const T* g;
  T scale;
  T* e_new;
};

/// Which function of x_i a reduction sums, in double: |x_i| or x_i^2; or one of onebit's
/// masked leaves (detail/group_means.hpp): |x_i| of the negatives only, |x_i| of the others
/// only, or the count of the negatives.
enum class summand { abs, square, negative_abs, nonnegative_abs, negative_count };

/// The bucket of a candidate key in Top-k's candidate histogram: fine buckets of 2^shift keys
/// from the bound up, everything beyond the last one in the last. Candidates have
/// key >= bound, so key - bound does not wrap.
template <class U>
struct candidate_digit {
  U bound;
  unsigned shift;

  static constexpr std::size_t buckets = std::size_t{1} << tuning::radix_select::digit_bits;
  static constexpr std::size_t last = buckets - 1;

  std::size_t operator()(U key) const noexcept {
    return static_cast<std::size_t>(std::min<U>(static_cast<U>((key - bound) >> shift), U{last}));
  }
};

/// key >> shift, defined for shift == the width of U (then 0).
template <class U>
constexpr U shift_right(U key, unsigned shift) noexcept {
  return shift >= sizeof(U) * 8 ? U{0} : static_cast<U>(key >> shift);
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
