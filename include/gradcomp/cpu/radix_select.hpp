#pragma once
// Radix select on magnitude keys: the k-th largest key T, and how many keys are above it.
//
// Keys are detail::magnitude_key values (uint32 for float, uint64 for double): unsigned
// integers whose order is the magnitude order, NaN on top. Selecting among them digit by
// digit, most significant first, needs one histogram pass per digit and no comparisons of
// floats. Both versions first find the bits all keys share (from the smallest and largest
// key), so inputs whose magnitudes lie in a narrow range (|x| in [1, 1.00003]: identical
// leading bits) take one or two passes instead of three, and all-equal inputs none.
//
// * select_kth_largest(keys, k): sequential, for candidate sets and samples (reorders keys).
// * select_kth_largest(policy, x, k, chunk): parallel, over a whole input, for Top-k's
//   fallback. Per-chunk histograms are merged in chunk order, and it also reports how many
//   keys equal T in each chunk, so that the ordered compaction after it knows how many ties
//   each chunk may keep (ties go to the lowest indices).
#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "../detail/bits.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "kernel_types.hpp"
#include "segmented.hpp"
#include "simd.hpp"
#include "tuning.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

using gradcomp::detail::magnitude_key;
using gradcomp::detail::uint_of;

/// The k-th largest key and the number of keys strictly above it (so keys equal to it fill
/// ranks above + 1 .. k and perhaps more).
template <class U>
struct kth_largest {
  U key;
  std::size_t above;
};

inline constexpr unsigned radix_digit_bits = tuning::radix_select::digit_bits;
inline constexpr std::size_t radix_buckets = std::size_t{1} << radix_digit_bits;
inline constexpr std::size_t select_by_partition_below = tuning::radix_select::partition_below;

/// The k-th largest of keys (1 <= k <= keys.size()) by std::nth_element; reorders keys.
template <class U>
kth_largest<U> select_by_partition(std::span<U> keys, std::size_t k) {
  std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(k - 1), keys.end(), std::greater<>{});
  const U key = keys[k - 1];
  // Every key above `key` now sits before position k - 1.
  std::size_t above = 0;
  for (std::size_t i = 0; i + 1 < k; ++i) above += keys[i] > key;
  return {key, above};
}

/// The bits a set of keys shares: keys lie in [lo, hi], so they agree on every bit above
/// the highest bit where lo and hi differ. Returns how many low bits still vary.
template <class U>
constexpr unsigned varying_bits(U lo, U hi) noexcept {
  return static_cast<unsigned>(std::bit_width(static_cast<U>(lo ^ hi)));
}


/// The k-th largest of keys (1 <= k <= keys.size()), sequentially. Reorders and overwrites
/// keys (the survivors of each digit are moved to the front).
template <class U>
kth_largest<U> select_kth_largest(std::span<U> keys, std::size_t k) {
  std::size_t n = keys.size();
  if (n <= select_by_partition_below) return select_by_partition(keys, k);
  U* data = keys.data();
  U lo = data[0], hi = data[0];
  for (std::size_t i = 1; i < n; ++i) {
    lo = std::min(lo, data[i]);
    hi = std::max(hi, data[i]);
  }
  if (lo == hi) return {lo, 0};
  unsigned remaining = varying_bits(lo, hi);  // bits below the shared prefix
  U prefix = shift_right(hi, remaining);
  std::size_t above = 0;
  std::array<std::size_t, radix_buckets> hist;
  for (;;) {
    const unsigned width = std::min(radix_digit_bits, remaining);
    const unsigned shift = remaining - width;
    const std::size_t buckets = std::size_t{1} << width;
    const U mask = static_cast<U>(buckets - 1);
    std::fill_n(hist.begin(), buckets, std::size_t{0});
    for (std::size_t i = 0; i < n; ++i) ++hist[(data[i] >> shift) & mask];
    // The bucket holding rank k, counting from the largest digit down.
    std::size_t b = buckets - 1, higher = 0;
    while (higher + hist[b] < k) higher += hist[b--];
    above += higher;
    k -= higher;
    prefix = static_cast<U>((prefix << width) | b);
    remaining = shift;
    if (remaining == 0) return {prefix, above};
    if (hist[b] < n) {  // keep the bucket's keys only
      std::size_t kept = 0;
      for (std::size_t i = 0; i < n; ++i)
        if (((data[i] >> shift) & mask) == b) data[kept++] = data[i];
      n = kept;
    }
    if (n <= select_by_partition_below) {
      const kth_largest<U> rest = select_by_partition(std::span<U>(data, n), k);
      return {rest.key, above + rest.above};
    }
  }
}

/// The result of the parallel select: T, the count above it, and the keys equal to T in
/// each chunk.
template <class U>
struct exact_selection {
  U key{};
  std::size_t above = 0;
  std::vector<std::size_t> ties;  // ties[c]: elements of chunk c whose key is T
};

/// Chunk size of the parallel select: at most tuning::radix_select::max_chunks chunks (their
/// histograms, 8 KiB each, are kept for the tie counts), whole compaction blocks, and counts
/// that fit 32 bits.
inline std::size_t select_chunk(std::size_t n, std::size_t block, std::size_t at_least) {
  const std::size_t wanted = (chunk_count(n, tuning::radix_select::max_chunks) + block - 1) / block * block;
  return std::min(std::max(at_least, wanted), std::size_t{1} << 30);
}

/// The smallest and largest key of x[0, n), folded into lo and hi.
template <class T>
void key_range(const T* x, std::size_t n, uint_of<T>& lo, uint_of<T>& hi) {
  uint_of<T> l = lo, h = hi;
  for (std::size_t i = 0; i < n; ++i) {
    const uint_of<T> key = magnitude_key(x[i]);
    l = key < l ? key : l;
    h = key > h ? key : h;
  }
  lo = l;
  hi = h;
}

/// Calls f(key) for every key of x[0, n) whose bits above `remaining` equal prefix.
template <class T, class F>
void for_each_matching_key(const T* x, std::size_t n, uint_of<T> prefix, unsigned remaining, F&& f) {
  simd::dispatch([&](auto tag) { for_each_matching(tag, x, n, prefix, remaining, f); });
}

inline constexpr std::size_t gather_survivors_below = tuning::radix_select::gather_survivors_below;

/// The k-th largest magnitude key of x (1 <= k <= x.size()) in parallel, with the ties per
/// chunk of `chunk` elements. Deterministic: chunks depend on x.size() only.
template <class T>
exact_selection<uint_of<T>> select_kth_largest(const exec::par_t& policy, const segmented_input<T>& x, std::size_t k,
                                               std::size_t chunk) {
  using U = uint_of<T>;
  const std::size_t n = x.size();
  const std::size_t chunks = chunk_count(n, chunk);
  exact_selection<U> result;
  result.ties.assign(chunks, 0);

  std::vector<U> chunk_lo(chunks, ~U{0}), chunk_hi(chunks, U{0});
  for_each_chunk(policy, n, chunk, [&](std::size_t c, std::size_t begin, std::size_t end) {
    x.for_each_piece(begin, end, [&](const T* p, std::size_t m, std::size_t) { key_range(p, m, chunk_lo[c], chunk_hi[c]); });
  });
  const U lo = *std::min_element(chunk_lo.begin(), chunk_lo.end());
  const U hi = *std::max_element(chunk_hi.begin(), chunk_hi.end());
  if (lo == hi) {  // every key is T
    result.key = lo;
    for (std::size_t c = 0; c < chunks; ++c) result.ties[c] = std::min(chunk, n - c * chunk);
    return result;
  }

  unsigned remaining = varying_bits(lo, hi);
  U prefix = shift_right(hi, remaining);
  std::vector<std::uint32_t> hist(chunks * radix_buckets);
  std::array<std::size_t, radix_buckets> total;
  for (;;) {
    const unsigned width = std::min(radix_digit_bits, remaining);
    const unsigned shift = remaining - width;
    const std::size_t buckets = std::size_t{1} << width;
    const U mask = static_cast<U>(buckets - 1);
    for_each_chunk(policy, n, chunk, [&](std::size_t c, std::size_t begin, std::size_t end) {
      std::uint32_t* h = hist.data() + c * radix_buckets;
      std::fill_n(h, buckets, std::uint32_t{0});
      x.for_each_piece(begin, end, [&](const T* p, std::size_t m, std::size_t) {
        for_each_matching_key(p, m, prefix, remaining, [&](U key) { ++h[(key >> shift) & mask]; });
      });
    });
    std::fill_n(total.begin(), buckets, std::size_t{0});
    for (std::size_t c = 0; c < chunks; ++c)
      for (std::size_t b = 0; b < buckets; ++b) total[b] += hist[c * radix_buckets + b];
    std::size_t b = buckets - 1, higher = 0;
    while (higher + total[b] < k) higher += total[b--];
    result.above += higher;
    k -= higher;
    prefix = static_cast<U>((prefix << width) | b);
    remaining = shift;
    if (remaining == 0) {  // the bucket is one key: its per-chunk counts are the ties
      result.key = prefix;
      for (std::size_t c = 0; c < chunks; ++c) result.ties[c] = hist[c * radix_buckets + b];
      return result;
    }
    if (total[b] < gather_survivors_below) break;
  }

  // Few keys left: gather them per chunk and finish on the calling thread.
  std::vector<std::vector<U>> survivors(chunks);
  for_each_chunk(policy, n, chunk, [&](std::size_t c, std::size_t begin, std::size_t end) {
    x.for_each_piece(begin, end, [&](const T* p, std::size_t m, std::size_t) {
      for_each_matching_key(p, m, prefix, remaining, [&](U key) { survivors[c].push_back(key); });
    });
  });
  std::vector<U> all;
  for (const auto& s : survivors) all.insert(all.end(), s.begin(), s.end());
  const kth_largest<U> last = select_kth_largest(std::span<U>(all), k);
  result.key = last.key;
  result.above += last.above;
  for (std::size_t c = 0; c < chunks; ++c)
    result.ties[c] = static_cast<std::size_t>(std::count(survivors[c].begin(), survivors[c].end(), last.key));
  return result;
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
