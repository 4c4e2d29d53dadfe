// The selection kernels of Top-k, for one target: once T (the k-th largest magnitude key)
// is known or being narrowed down.
//   keep_top          keep key > T, and keys == T while a tie quota lasts (lowest indices
//                     first), from candidate (index, value) runs;
//   scan_bucket       counts the candidates above a histogram bucket and lists the keys in it;
//   for_each_matching calls f(key) for every key whose bits above `remaining` equal a
//                     prefix (radix select's passes after the first digit, when few match).
// Each has a vector loop and the scalar loop that defines it (detail::keep_top_scalar, used
// for tails, for index types narrower or wider than the values, and on scalar targets).
#if defined(GRADCOMP_CPU_SIMD_SELECT_INL_) == defined(HWY_TARGET_TOGGLE)
#ifdef GRADCOMP_CPU_SIMD_SELECT_INL_
#undef GRADCOMP_CPU_SIMD_SELECT_INL_
#else
#define GRADCOMP_CPU_SIMD_SELECT_INL_
#endif

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../detail/bits.hpp"
#include "../kernel_types.hpp"
#include "../keep_top.hpp"

#if GRADCOMP_SIMD_EMIT
GRADCOMP_SIMD_NAMESPACE_BEGIN

using detail::candidate_digit;
using detail::keep_top_scalar;
using detail::shift_right;

/// keep_top_scalar for candidates given as (indices, values) arrays: writes exactly the kept
/// entries to idx / val (never past them: other threads write what follows).
template <class T, class Index>
std::size_t keep_top(tag, const Index* in_idx, const T* in_val, std::size_t n, uint_of<T> threshold,
                     std::size_t& ties_left, Index* idx, T* val) {
  std::size_t i = 0, w = 0;
#if GRADCOMP_SIMD_VECTORS
  using U = uint_of<T>;
  if constexpr (std::is_same_v<Index, U>) {  // index lanes as wide as value lanes
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

/// For the candidate values x[0, n): returns how many lie in buckets above `bucket`, and
/// appends (chunk, key) for each one in `bucket` to in_bucket.
template <class T>
std::size_t scan_bucket(tag, const T* x, std::size_t n, const candidate_digit<uint_of<T>>& digit, std::size_t bucket,
                        std::size_t chunk, std::vector<std::pair<std::size_t, uint_of<T>>>& in_bucket) {
  using U = uint_of<T>;
  std::size_t above = 0, i = 0;
#if GRADCOMP_SIMD_VECTORS
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
  for (; i < n; ++i) {
    const U key = magnitude_key(x[i]);
    const std::size_t b = digit(key);
    above += b > bucket;
    if (b == bucket) in_bucket.emplace_back(chunk, key);
  }
  return above;
}

/// Calls f(key) for every key of x[0, n) whose bits above `remaining` equal prefix.
template <class T, class F>
void for_each_matching(tag, const T* x, std::size_t n, uint_of<T> prefix, unsigned remaining, F&& f) {
  using U = uint_of<T>;
  std::size_t i = 0;
#if GRADCOMP_SIMD_VECTORS
  // After the first digit few keys match: whole vectors are skipped by one test.
  const hn::ScalableTag<T> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  constexpr std::size_t L = hn::MaxLanes(d);
  if (remaining < sizeof(U) * 8) {
    const auto magnitude = hn::Set(du, static_cast<U>(~U{0} >> 1));
    const auto want = hn::Set(du, prefix);
    for (; i + L <= n; i += L) {
      const auto key = hn::And(hn::BitCast(du, hn::LoadU(d, x + i)), magnitude);
      if (hn::AllFalse(du, hn::Eq(hn::ShiftRightSame(key, static_cast<int>(remaining)), want))) continue;
      for (std::size_t j = i; j < i + L; ++j) {
        const U k = magnitude_key(x[j]);
        if (shift_right(k, remaining) == prefix) f(k);
      }
    }
  }
#endif
  for (; i < n; ++i) {
    const U k = magnitude_key(x[i]);
    if (shift_right(k, remaining) == prefix) f(k);
  }
}

GRADCOMP_SIMD_NAMESPACE_END
#endif
#endif
