#pragma once
// Counter-based randomness: the i-th random number of a (seed, step) stream is a pure
// function of (seed, step, i). Every worker and every back end (threads, SIMD lanes, GPU
// threads) can draw any element's number without sharing a generator state, so random
// compressors give identical results everywhere for the same seed and step.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace gradcomp::detail {

/// SplitMix64's output function: a bijective 64-bit mixer with good avalanche.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline constexpr std::uint64_t golden_gamma = 0x9e3779b97f4a7c15ULL;

/// The stream of 64-bit random numbers for one (seed, step): value i is
/// mix64(key + (i + 1) * gamma), the i-th output of SplitMix64 started at key.
class counter_stream {
 public:
  constexpr counter_stream(std::uint64_t seed, std::uint64_t step) noexcept
      : key_(mix64(seed + golden_gamma) ^ mix64(step * golden_gamma + 0x632be59bd9b4e019ULL)) {}

  constexpr std::uint64_t bits(std::uint64_t i) const noexcept {
    return mix64(key_ + (i + 1) * golden_gamma);
  }

  /// Uniform double in [0, 1) with 53 random bits.
  constexpr double uniform(std::uint64_t i) const noexcept {
    return static_cast<double>(bits(i) >> 11) * 0x1.0p-53;
  }

  constexpr std::uint64_t key() const noexcept { return key_; }

 private:
  std::uint64_t key_;
};

/// A keyed pseudo-random permutation of [0, n): a balanced Feistel network on the
/// smallest 4^h >= n values, with cycle walking to stay inside [0, n). Bijective by
/// construction, so the images of 0..k-1 are k distinct indices; each image is
/// computed independently (parallel- and GPU-friendly).
class index_permutation {
 public:
  index_permutation(std::uint64_t n, const counter_stream& stream) noexcept : n_(n) {
    half_bits_ = 1;
    while (half_bits_ < 32 && (std::uint64_t{1} << (2 * half_bits_)) < n) ++half_bits_;
    mask_ = (std::uint64_t{1} << half_bits_) - 1;
    for (int r = 0; r < rounds; ++r) round_key_[r] = stream.bits(static_cast<std::uint64_t>(r));
  }

  std::uint64_t operator()(std::uint64_t j) const noexcept {
    std::uint64_t v = j;
    do v = encrypt(v);
    while (v >= n_);  // cycle walking: at most 4 expected iterations since 4^h < 4n
    return v;
  }

 private:
  static constexpr int rounds = 6;

  std::uint64_t encrypt(std::uint64_t v) const noexcept {
    std::uint64_t left = v >> half_bits_, right = v & mask_;
    for (int r = 0; r < rounds; ++r) {
      const std::uint64_t next = left ^ (mix64(right ^ round_key_[r]) & mask_);
      left = right;
      right = next;
    }
    return (left << half_bits_) | right;
  }

  std::uint64_t n_;
  std::uint64_t mask_ = 0;
  int half_bits_ = 1;
  std::uint64_t round_key_[rounds] = {};
};

/// The k (<= n) distinct indices that random-k selects at (seed, step), ascending:
/// the images of 0..k-1 under the (seed, step) permutation of [0, n), sorted.
template <class Index>
void shared_random_indices(std::uint64_t n, std::uint64_t k, std::uint64_t seed,
                           std::uint64_t step, std::vector<Index>& out) {
  out.resize(k);
  if (k == 0) return;
  if (k == n) {  // every index: no need to permute
    for (std::uint64_t j = 0; j < n; ++j) out[j] = static_cast<Index>(j);
    return;
  }
  const index_permutation perm(n, counter_stream(seed, step));
  for (std::uint64_t j = 0; j < k; ++j) out[j] = static_cast<Index>(perm(j));
  std::sort(out.begin(), out.end());
}

}  // namespace gradcomp::detail
