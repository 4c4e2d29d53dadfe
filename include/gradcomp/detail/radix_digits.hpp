#pragma once
// The decisions of a most-significant-digit-first radix select on magnitude keys, as
// __host__ __device__ functions: the CUDA back end's Top-k kernels make them on the device,
// and the CPU tests run the same functions over whole inputs to check the selection rule
// (the k largest keys, ties at the k-th key to the lowest indices) against exec::seq.
#include <cstddef>
#include <cstdint>

#include "host_device.hpp"

namespace gradcomp::detail {

/// Where the select stands: the high `done` bits of the k-th largest key K are `prefix`;
/// K is the k_left-th largest of the keys that share them; `above` keys are larger than all
/// of those.
struct radix_progress {
  unsigned long long prefix = 0;
  unsigned done = 0;
  unsigned long long k_left = 0;
  unsigned long long above = 0;
};

/// Whether key's high `done` bits are the prefix (every key matches before the first digit).
template <class U>
GRADCOMP_HD constexpr bool matches_prefix(U key, const radix_progress& p) noexcept {
  return p.done == 0 || static_cast<unsigned long long>(key >> (sizeof(U) * 8 - p.done)) == p.prefix;
}

/// The next digit (of `digit_bits` bits) of a matching key.
template <class U>
GRADCOMP_HD constexpr unsigned next_digit(U key, const radix_progress& p, unsigned digit_bits) noexcept {
  return static_cast<unsigned>((key >> (sizeof(U) * 8 - p.done - digit_bits)) & ((U{1} << digit_bits) - 1));
}

/// Given the histogram of the next digit over the matching keys, moves to the digit that
/// holds rank k_left, counting from the largest digit down.
GRADCOMP_HD inline void choose_digit(radix_progress& p, const unsigned long long* hist, unsigned digit_bits) noexcept {
  unsigned long long higher = 0;
  unsigned b = (1u << digit_bits) - 1;
  while (b > 0 && higher + hist[b] < p.k_left) higher += hist[b--];
  p.above += higher;
  p.k_left -= higher;
  p.prefix = (p.prefix << digit_bits) | b;
  p.done += digit_bits;
}

/// After the last digit: K = prefix, `above` keys exceed it, and the lowest-indexed
/// k_left of the keys equal to K are kept. keep(key, i) for the index last_tie of the
/// k_left-th such key.
template <class U>
GRADCOMP_HD constexpr bool top_k_keeps(U key, unsigned long long i, U k_key, unsigned long long last_tie) noexcept {
  return key > k_key || (key == k_key && i <= last_tie);
}

}  // namespace gradcomp::detail
