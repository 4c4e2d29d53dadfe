#pragma once
// Counter-based randomness: the i-th random number of a (seed, step) stream is a pure
// function of (seed, step, i). Every worker and every back end (threads, SIMD lanes, GPU
// threads) can draw any element's number without sharing a generator state, so random
// compressors give identical results everywhere for the same seed and step.
#include <algorithm>
#include <bit>
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

  /// The stream's key: bits(i) is mix64(key() + (i + 1) * golden_gamma). Vectorised back
  /// ends evaluate that formula for many i at once.
  constexpr std::uint64_t key() const noexcept { return key_; }

 private:
  std::uint64_t key_;
};

/// Uniform integer in [0, n) for n >= 1, drawn from the stream at *counter and onward
/// (Lemire's multiply-shift with rejection, so exactly uniform; *counter advances by the
/// number of draws used, almost always one).
inline std::uint64_t uniform_below(const counter_stream& stream, std::uint64_t n, std::uint64_t& counter) noexcept {
  __extension__ using u128 = unsigned __int128;
  u128 m = static_cast<u128>(stream.bits(counter++)) * n;
  auto low = static_cast<std::uint64_t>(m);
  if (low < n) {
    const std::uint64_t reject_below = (0 - n) % n;  // 2^64 mod n
    while (low < reject_below) {
      m = static_cast<u128>(stream.bits(counter++)) * n;
      low = static_cast<std::uint64_t>(m);
    }
  }
  return static_cast<std::uint64_t>(m >> 64);
}

/// Whether shared_random_indices keeps membership in a bitmap of n bits (else in a hash set):
/// when the bitmap is not much more work than the k draws. The bitmap also yields the
/// indices sorted.
constexpr bool random_indices_use_bitmap(std::uint64_t n, std::uint64_t k) noexcept { return n / 64 <= 16 * k + 65536; }

/// Floyd's algorithm on the stream: for j = n-k .. n-1, draw t in [0, j]; take t if new,
/// else j (which is new). contains(i) and insert(i) keep the set.
template <class Contains, class Insert>
void floyd_draws(std::uint64_t n, std::uint64_t k, const counter_stream& stream, Contains&& contains,
                 Insert&& insert) {
  std::uint64_t counter = 0;
  for (std::uint64_t j = n - k; j < n; ++j) {
    const std::uint64_t t = uniform_below(stream, j + 1, counter);
    insert(contains(t) ? j : t);
  }
}

/// Floyd's draws (k < n) marked in a bitmap of n / 64 + 1 zeroed words.
inline void floyd_into_bitmap(std::uint64_t n, std::uint64_t k, const counter_stream& stream,
                              std::uint64_t* bitmap) noexcept {
  floyd_draws(
      n, k, stream, [&](std::uint64_t i) { return (bitmap[i / 64] >> (i % 64)) & 1; },
      [&](std::uint64_t i) { bitmap[i / 64] |= std::uint64_t{1} << (i % 64); });
}

/// The k (<= n) distinct indices that random-k selects at (seed, step), ascending: a
/// uniformly random k-subset of [0, n), by Floyd's algorithm (every subset has probability
/// 1 / C(n, k)) on the (seed, step) stream. Membership lives in a bitmap of n bits or in a
/// flat hash set (random_indices_use_bitmap). Both give the same subset; the draws are what
/// define it.
template <class Index>
void shared_random_indices(std::uint64_t n, std::uint64_t k, std::uint64_t seed, std::uint64_t step,
                           std::vector<Index>& out) {
  out.resize(k);
  if (k == 0) return;
  if (k == n) {  // every index: nothing to draw
    for (std::uint64_t j = 0; j < n; ++j) out[j] = static_cast<Index>(j);
    return;
  }
  const counter_stream stream(seed, step);
  if (random_indices_use_bitmap(n, k)) {
    std::vector<std::uint64_t> bitmap(n / 64 + 1, 0);
    floyd_into_bitmap(n, k, stream, bitmap.data());
    std::size_t pos = 0;
    for (std::size_t w = 0; w < bitmap.size(); ++w)
      for (std::uint64_t bits = bitmap[w]; bits != 0; bits &= bits - 1)
        out[pos++] = static_cast<Index>(w * 64 + static_cast<std::uint64_t>(std::countr_zero(bits)));
  } else {
    // Open addressing with linear probing; slots hold index + 1 so that 0 means empty.
    const std::size_t slots = std::bit_ceil(static_cast<std::size_t>(2 * k));
    std::vector<std::uint64_t> table(slots, 0);
    const auto slot_of = [&](std::uint64_t i) {
      std::size_t h = static_cast<std::size_t>(mix64(i)) & (slots - 1);
      while (table[h] != 0 && table[h] != i + 1) h = (h + 1) & (slots - 1);
      return h;
    };
    std::size_t pos = 0;
    floyd_draws(
        n, k, stream, [&](std::uint64_t i) { return table[slot_of(i)] != 0; },
        [&](std::uint64_t i) {
          table[slot_of(i)] = i + 1;
          out[pos++] = static_cast<Index>(i);
        });
    std::sort(out.begin(), out.end());
  }
}

}  // namespace gradcomp::detail
