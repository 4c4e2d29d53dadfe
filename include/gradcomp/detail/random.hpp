#pragma once
// Counter-based randomness: the i-th random number of a (seed, step) stream is a pure
// function of (seed, step, i). Every worker and every back end (threads, SIMD lanes, GPU
// threads) can draw any element's number without sharing a generator state, so random
// compressors give identical results everywhere for the same seed and step.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
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

/// Where Floyd's algorithm keeps the set it has drawn so far. Every choice gives the same
/// subset (the draws define it); they differ in time and scratch memory.
enum class index_membership {
  fastest,   // random_indices_use_bitmap: a bitmap up to 1024 bits per kept index (+ 512 KiB)
  bounded,   // O(k) scratch, for untrusted (n, k): the bitmap when it needs at most twice the
             // hash set's bytes (it is the faster of the two), else the hash set; so at most
             // 32 bytes per kept index (64 when n > 2^32 - 1)
  bitmap,    // n / 64 + 1 words, scanned in order
  hash_set,  // 2k to 4k slots of 4 bytes (n < 2^32) or 8 bytes, then a sort of the k indices
};

/// Scratch bytes of the two membership structures for k < n draws from [0, n).
constexpr std::uint64_t bitmap_scratch_bytes(std::uint64_t n) noexcept { return (n / 64 + 1) * 8; }
constexpr std::uint64_t hash_set_slots(std::uint64_t k) noexcept { return std::bit_ceil(2 * k); }
constexpr std::uint64_t hash_set_scratch_bytes(std::uint64_t n, std::uint64_t k) noexcept {
  if (k > (std::uint64_t{1} << 58)) return std::numeric_limits<std::uint64_t>::max();  // not allocatable anyway
  return hash_set_slots(k) * (n <= std::numeric_limits<std::uint32_t>::max() ? 4 : 8);
}

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

/// Floyd's draws (0 < k < n) kept in an open-addressing hash set (linear probing; a slot
/// holds index + 1, 0 means empty, so Slot must hold n), written to out[0, k) and sorted.
template <class Slot, class Index>
void floyd_into_hash_set(std::uint64_t n, std::uint64_t k, const counter_stream& stream, Index* out) {
  const auto slots = static_cast<std::size_t>(hash_set_slots(k));
  std::vector<Slot> table(slots, 0);
  const auto slot_of = [&](std::uint64_t i) {
    std::size_t h = static_cast<std::size_t>(mix64(i)) & (slots - 1);
    while (table[h] != 0 && table[h] != static_cast<Slot>(i + 1)) h = (h + 1) & (slots - 1);
    return h;
  };
  // floyd_draws with one probe for a new t (almost every draw): its empty slot takes it.
  std::uint64_t counter = 0;
  std::size_t pos = 0;
  for (std::uint64_t j = n - k; j < n; ++j) {
    const std::uint64_t t = uniform_below(stream, j + 1, counter);
    std::size_t h = slot_of(t);
    std::uint64_t taken = t;
    if (table[h] != 0) {  // t is in the set: take j, which is not
      taken = j;
      h = slot_of(j);
    }
    table[h] = static_cast<Slot>(taken + 1);
    out[pos++] = static_cast<Index>(taken);
  }
  std::sort(out, out + k);
}

/// The k (<= n) distinct indices that random-k selects at (seed, step), ascending: a
/// uniformly random k-subset of [0, n), by Floyd's algorithm (every subset has probability
/// 1 / C(n, k)) on the (seed, step) stream. Membership lives in a bitmap of n bits or in a
/// flat hash set, as `membership` says. All give the same subset; the draws are what define
/// it. Decoding uses index_membership::bounded, so a hostile (n, k) cannot make it allocate
/// an n-bit bitmap for a handful of values.
template <class Index>
void shared_random_indices(std::uint64_t n, std::uint64_t k, std::uint64_t seed, std::uint64_t step,
                           std::vector<Index>& out, index_membership membership = index_membership::fastest) {
  out.resize(k);
  if (k == 0) return;
  if (k == n) {  // every index: nothing to draw
    for (std::uint64_t j = 0; j < n; ++j) out[j] = static_cast<Index>(j);
    return;
  }
  bool bitmap = membership == index_membership::bitmap;
  if (membership == index_membership::fastest) bitmap = random_indices_use_bitmap(n, k);
  if (membership == index_membership::bounded) bitmap = bitmap_scratch_bytes(n) / 2 <= hash_set_scratch_bytes(n, k);
  const counter_stream stream(seed, step);
  if (bitmap) {
    std::vector<std::uint64_t> words(static_cast<std::size_t>(n / 64 + 1), 0);
    floyd_into_bitmap(n, k, stream, words.data());
    std::size_t pos = 0;
    for (std::size_t w = 0; w < words.size(); ++w)
      for (std::uint64_t bits = words[w]; bits != 0; bits &= bits - 1)
        out[pos++] = static_cast<Index>(w * 64 + static_cast<std::uint64_t>(std::countr_zero(bits)));
  } else if (n <= std::numeric_limits<std::uint32_t>::max()) {
    floyd_into_hash_set<std::uint32_t>(n, k, stream, out.data());
  } else {
    floyd_into_hash_set<std::uint64_t>(n, k, stream, out.data());
  }
}

}  // namespace gradcomp::detail
