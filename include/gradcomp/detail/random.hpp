#pragma once
// Counter-based randomness: the i-th random number of a (seed, step) stream is a pure
// function of (seed, step, i). Every worker and every back end (threads, SIMD lanes, GPU
// threads) can draw any element's number without sharing a generator state, so random
// compressors give identical results everywhere for the same seed and step.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "host_device.hpp"

namespace gradcomp::detail {

/// SplitMix64's output function: a bijective 64-bit mixer with good avalanche.
GRADCOMP_HD constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline constexpr std::uint64_t golden_gamma = 0x9e3779b97f4a7c15ULL;

/// The stream of 64-bit random numbers for one (seed, step): value i is
/// mix64(key + (i + 1) * gamma), the i-th output of SplitMix64 started at key.
class counter_stream {
 public:
  GRADCOMP_HD constexpr counter_stream(std::uint64_t seed, std::uint64_t step) noexcept
      : key_(mix64(seed + golden_gamma) ^ mix64(step * golden_gamma + 0x632be59bd9b4e019ULL)) {}

  GRADCOMP_HD constexpr std::uint64_t bits(std::uint64_t i) const noexcept {
    return mix64(key_ + (i + 1) * golden_gamma);
  }

  /// Uniform double in [0, 1) with 53 random bits.
  GRADCOMP_HD constexpr double uniform(std::uint64_t i) const noexcept {
    return static_cast<double>(bits(i) >> 11) * 0x1.0p-53;
  }

  /// The stream's key: bits(i) is mix64(key() + (i + 1) * golden_gamma). Vectorised back
  /// ends evaluate that formula for many i at once.
  GRADCOMP_HD constexpr std::uint64_t key() const noexcept { return key_; }

 private:
  std::uint64_t key_;
};

/// Random-k's index set (wire version 2 of the seeded payload).
///
/// Definition: at (seed, step) every index i < n gets the hash h(i) = counter_stream(seed,
/// step).bits(i), draw i of the stream; the k indices with the smallest hashes are selected,
/// listed ascending. The hashes of distinct indices are distinct (i -> key + (i + 1) * gamma
/// is injective modulo 2^64 because gamma is odd, and mix64 is a bijection), so "the k
/// smallest" is one well-defined set, with no ties to break.
///
/// Why it is uniform: if the n hashes were independent uniform 64-bit values, every ordering
/// of them would be equally likely, so every k-subset would be the k smallest with
/// probability 1 / C(n, k). SplitMix64's outputs are the stand-in for independent uniform
/// values here as in QSGD and stochastic rounding (tests/unit/test_sparsifiers.cpp checks the
/// frequency of every index and of every subset of small dimensions).
///
/// Why this definition: it is a pure function of each index, so threads, SIMD lanes and GPU
/// threads can all compute it (Floyd's algorithm, used before, is a chain of draws), and it is
/// plain 64-bit integer arithmetic, the same bits on every machine. The cost is that finding
/// the set hashes every index: O(n) time (O(k) memory), where Floyd's took O(k).
///
/// How it is found (any method gives the same set): a bound t that about k + 5 sqrt(k) + 8
/// hashes fall at or below, one pass that keeps the (index) candidates with h(i) <= t in index
/// order, then the k-th smallest hash among the candidates, and the candidates at or below
/// it. If the bound caught fewer than k, or more than the scratch allows (random_k_scratch_cap),
/// it is moved (doubled, or bisected) and the pass repeated.
GRADCOMP_HD constexpr std::uint64_t random_k_hash(const counter_stream& stream, std::uint64_t i) noexcept { return stream.bits(i); }

/// The most candidates the search keeps: 2k + 64 (the expected k + 5 sqrt(k) + 8 is many
/// standard deviations below it), so the scratch is O(k).
constexpr std::uint64_t random_k_scratch_cap(std::uint64_t k) noexcept {
  return k > (std::numeric_limits<std::uint64_t>::max() - 64) / 2 ? std::numeric_limits<std::uint64_t>::max()
                                                                  : 2 * k + 64;
}

/// A first hash bound for k of n: about k + 5 sqrt(k) + 8 of n uniform 64-bit hashes are at
/// or below it. Only speed depends on it, never the selected set.
inline std::uint64_t random_k_first_bound(std::uint64_t n, std::uint64_t k) noexcept {
  const double kd = static_cast<double>(k);
  const double p = (kd + 5.0 * std::sqrt(kd) + 8.0) / static_cast<double>(n);
  const double t = p * 0x1.0p64;
  return t >= 0x1.0p64 ? std::numeric_limits<std::uint64_t>::max() : static_cast<std::uint64_t>(t);
}

/// Finds a bound t with k <= #{i : h(i) <= t} <= cap. collect(t, cap) returns that count,
/// having stored the candidates when it is at most cap, or any value above cap (it may stop
/// counting there). Needs 1 <= k < n and cap > k. Returns the number of candidates stored.
template <class Collect>
std::uint64_t random_k_search(std::uint64_t n, std::uint64_t k, std::uint64_t cap, Collect&& collect) {
  std::uint64_t t = random_k_first_bound(n, k);
  std::uint64_t lo = 0, hi = 0;  // count(lo) < k, count(hi) > cap, once known
  bool have_lo = false, have_hi = false;
  for (;;) {
    const std::uint64_t count = collect(t, cap);
    if (count >= k && count <= cap) return count;
    // count(t) rises by at most one per unit of t (hashes are distinct) and cap > k, so the
    // interval never closes without a t between the two limits.
    if (count < k) {
      lo = t;
      have_lo = true;
      t = have_hi ? lo + (hi - lo) / 2 : (t > std::numeric_limits<std::uint64_t>::max() / 2 ? std::numeric_limits<std::uint64_t>::max() : 2 * t + 1);
    } else {
      hi = t;
      have_hi = true;
      t = have_lo ? lo + (hi - lo) / 2 : t / 2;
    }
  }
}

/// Random-k's index set (see random_k_hash): the k (<= n) indices with the smallest hashes at
/// (seed, step), ascending, in out. O(n) time, O(k) scratch.
template <class Index>
void shared_random_indices(std::uint64_t n, std::uint64_t k, std::uint64_t seed, std::uint64_t step,
                           std::vector<Index>& out) {
  out.resize(static_cast<std::size_t>(k));
  if (k == 0) return;
  if (k == n) {  // every index
    for (std::uint64_t j = 0; j < n; ++j) out[static_cast<std::size_t>(j)] = static_cast<Index>(j);
    return;
  }
  const counter_stream stream(seed, step);
  const std::uint64_t cap = random_k_scratch_cap(k);
  std::vector<std::uint64_t> candidates;  // indices with h(i) <= t, ascending
  candidates.reserve(static_cast<std::size_t>(std::min(cap, n)));
  const std::uint64_t found = random_k_search(n, k, cap, [&](std::uint64_t t, std::uint64_t limit) {
    candidates.clear();
    for (std::uint64_t i = 0; i < n; ++i) {
      if (random_k_hash(stream, i) > t) continue;
      if (candidates.size() == limit) return limit + 1;  // too many: the search moves t
      candidates.push_back(i);
    }
    return static_cast<std::uint64_t>(candidates.size());
  });
  // The k-th smallest hash among the candidates; those at or below it are the set.
  std::vector<std::uint64_t> hashes(static_cast<std::size_t>(found));
  for (std::size_t j = 0; j < hashes.size(); ++j) hashes[j] = random_k_hash(stream, candidates[j]);
  std::nth_element(hashes.begin(), hashes.begin() + static_cast<std::ptrdiff_t>(k - 1), hashes.end());
  const std::uint64_t kth = hashes[static_cast<std::size_t>(k - 1)];
  std::size_t pos = 0;
  for (const std::uint64_t i : candidates)
    if (random_k_hash(stream, i) <= kth) out[pos++] = static_cast<Index>(i);
}

}  // namespace gradcomp::detail
