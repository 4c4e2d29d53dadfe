#pragma once
// The element kernels of Top-k on exec::par, once T (the k-th largest magnitude key) is
// known or being narrowed down:
//   * keep_top: keep key > T, and keys == T while a tie quota lasts (lowest indices first);
//   * the candidate histogram's bucket of a key, and a scan that counts the candidates above
//     a bucket and lists the keys in it.
// Each has a SIMD loop and the scalar loop that defines it (used for the tails, the scalar
// build and index types wider or narrower than the values).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "../detail/bits.hpp"
#include "radix_select.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

/// Writes the entries j of x[0, n) with key > threshold, and those == threshold while
/// ties_left lasts (decrementing it), as (index_of(j), x[j]) to idx / val; returns how many.
template <class T, class Index, class IndexOf>
std::size_t keep_top_scalar(const T* x, std::size_t n, uint_of<T> threshold, std::size_t& ties_left,
                            IndexOf&& index_of, Index* idx, T* val) {
  std::size_t w = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const uint_of<T> key = magnitude_key(x[j]);
    if (key > threshold || (key == threshold && ties_left > 0)) {
      ties_left -= key == threshold;
      idx[w] = static_cast<Index>(index_of(j));
      val[w] = x[j];
      ++w;
    }
  }
  return w;
}

/// keep_top_scalar for candidates given as (indices, values) arrays: writes exactly the kept
/// entries to idx / val (never past them: other threads write what follows).
template <class T, class Index>
std::size_t keep_top(const Index* in_idx, const T* in_val, std::size_t n, uint_of<T> threshold, std::size_t& ties_left,
                     Index* idx, T* val) {
  std::size_t i = 0, w = 0;
#if GRADCOMP_CPU_SIMD
  using U = uint_of<T>;
  if constexpr (std::is_same_v<Index, U>) {  // index lanes as wide as value lanes
    namespace hn = simd::hn;
    const hn::ScalableTag<T> d;
    const hn::RebindToSigned<decltype(d)> di;  // keys < 2^(bits-1): signed compares are exact
    const hn::RebindToUnsigned<decltype(d)> du;
    using S = hn::TFromD<decltype(di)>;
    constexpr std::size_t L = hn::MaxLanes(d);
    constexpr std::size_t block = 1024;
    // Compress-stores write whole vectors: stage a block, then copy exactly what was kept.
    alignas(64) T staged_val[block + L];
    alignas(64) U staged_idx[block + L];
    const auto magnitude = hn::Set(di, static_cast<S>(~U{0} >> 1));
    const auto at = hn::Set(di, static_cast<S>(threshold));
    while (i + L <= n) {
      std::size_t staged = 0;
      for (; i + L <= n && staged + L <= block; i += L) {
        const auto v = hn::LoadU(d, in_val + i);
        const auto key = hn::And(hn::BitCast(di, v), magnitude);
        auto keep = hn::Gt(key, at);
        const auto tie = hn::Eq(key, at);
        if (!hn::AllFalse(di, tie)) {
          const std::size_t ties = hn::CountTrue(di, tie);
          if (ties <= ties_left) {
            keep = hn::Or(keep, tie);
            ties_left -= ties;
          } else if (ties_left > 0) {  // the quota runs out inside this vector
            staged += keep_top_scalar(in_val + i, L, threshold, ties_left, [&](std::size_t j) { return in_idx[i + j]; },
                                      staged_idx + staged, staged_val + staged);
            continue;
          }
        }
        hn::StoreU(hn::Compress(v, hn::RebindMask(d, keep)), d, staged_val + staged);
        hn::StoreU(hn::Compress(hn::LoadU(du, in_idx + i), hn::RebindMask(du, keep)), du, staged_idx + staged);
        staged += hn::CountTrue(di, keep);
      }
      std::memcpy(val + w, staged_val, staged * sizeof(T));
      std::memcpy(idx + w, staged_idx, staged * sizeof(U));
      w += staged;
    }
  }
#endif
  return w + keep_top_scalar(in_val + i, n - i, threshold, ties_left, [&](std::size_t j) { return in_idx[i + j]; },
                             idx + w, val + w);
}

/// The bucket of a candidate key in Top-k's candidate histogram: fine buckets of 2^shift
/// keys from the bound up, everything beyond the last one in the last. Candidates have
/// key >= bound, so key - bound does not wrap.
template <class U>
struct candidate_digit {
  U bound;
  unsigned shift;

  static constexpr std::size_t last = radix_buckets - 1;

  std::size_t operator()(U key) const noexcept {
    return static_cast<std::size_t>(std::min<U>(static_cast<U>((key - bound) >> shift), U{last}));
  }
};

/// For the candidate values x[0, n): returns how many lie in buckets above `bucket`, and
/// appends (chunk, key) for each one in `bucket` to in_bucket.
template <class T>
std::size_t scan_bucket(const T* x, std::size_t n, const candidate_digit<uint_of<T>>& digit, std::size_t bucket,
                        std::size_t chunk, std::vector<std::pair<std::size_t, uint_of<T>>>& in_bucket) {
  using U = uint_of<T>;
  std::size_t above = 0, i = 0;
  const auto scalar = [&](std::size_t j) {
    const U key = magnitude_key(x[j]);
    const std::size_t b = digit(key);
    above += b > bucket;
    if (b == bucket) in_bucket.emplace_back(chunk, key);
  };
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  const hn::RebindToSigned<decltype(d)> di;  // (key - bound) >> shift < 2^(bits-1)
  using S = hn::TFromD<decltype(di)>;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto magnitude = hn::Set(di, static_cast<S>(~U{0} >> 1));
  const auto base = hn::Set(di, static_cast<S>(digit.bound));
  const auto b = hn::Set(di, static_cast<S>(bucket));
  const bool last = bucket == digit.last;  // the last bucket holds every higher digit too
  for (; i + L <= n; i += L) {
    const auto key = hn::And(hn::BitCast(di, hn::LoadU(d, x + i)), magnitude);
    const auto t = hn::ShiftRightSame(hn::Sub(key, base), static_cast<int>(digit.shift));
    if (!last) above += hn::CountTrue(di, hn::Gt(t, b));
    const auto in = last ? hn::Not(hn::Lt(t, b)) : hn::Eq(t, b);
    if (hn::AllFalse(di, in)) continue;
    for (std::size_t j = i; j < i + L; ++j) {
      const U k = magnitude_key(x[j]);
      if (digit(k) == bucket) in_bucket.emplace_back(chunk, k);
    }
  }
#endif
  for (; i < n; ++i) scalar(i);
  return above;
}

}  // namespace gradcomp::cpu::detail
