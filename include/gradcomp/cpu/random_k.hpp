#pragma once
// random_k and unbiased_random_k on exec::par. The index set is the reference's
// (detail::shared_random_indices: the k indices with the smallest hashes, a pure function of
// each index), found the same way in parallel: each chunk of [0, d) counts its hashes at or
// below the search's bound, then writes its candidates at its offset (so they stay in index
// order); the k-th smallest candidate hash is selected, and the candidates at or below it
// are compacted in parallel. The values are gathered in parallel.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <vector>

#include "../compressors/random_k.hpp"
#include "../detail/bits.hpp"
#include "../detail/random.hpp"
#include "../payload/seeded_sparse.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "radix_select.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

inline constexpr std::size_t gather_chunk = tuning::scatter::chunk;
inline constexpr std::size_t hash_chunk = tuning::random_k::hash_chunk;

/// How many indices of [begin, end) have hashes at or below t; the first `room` of them are
/// written to out, in order (the SIMD kernel of cpu/simd/levels-inl.hpp).
inline std::size_t indices_with_hash_at_most(const gradcomp::detail::counter_stream& stream, std::size_t begin,
                                             std::size_t end, std::uint64_t t, std::uint64_t* out,
                                             std::size_t room) {
  std::size_t count = 0;
  simd::dispatch([&](auto tag) { count = indices_with_hash_at_most(tag, stream, begin, end, t, out, room); });
  return count;
}

/// Room per chunk for the one-pass search: the expected count of a chunk of `chunk` indices
/// under bound t, plus 8 standard deviations and 64.
inline std::size_t chunk_room(std::size_t chunk, std::uint64_t t) {
  const double expected = static_cast<double>(chunk) * (static_cast<double>(t) * 0x1.0p-64);
  return static_cast<std::size_t>(expected + 8.0 * std::sqrt(expected) + 64.0);
}

/// detail::shared_random_indices on exec::par: the same search, with each pass over [0, n)
/// cut into chunks.
template <class Index>
void shared_random_indices(const exec::par_t& policy, std::uint64_t n, std::uint64_t k, std::uint64_t seed,
                           std::uint64_t step, std::vector<Index>& out) {
  using gradcomp::detail::random_k_hash;
  if (k == 0 || k == n) return gradcomp::detail::shared_random_indices(n, k, seed, step, out);
  const gradcomp::detail::counter_stream stream(seed, step);
  const std::uint64_t cap = gradcomp::detail::random_k_scratch_cap(k);
  pooled_array<std::uint64_t> candidates(workspace_of(policy), cap);  // indices with h(i) <= t, ascending
  std::uint64_t* cand = candidates.data();
  // One pass: each chunk keeps its candidates in a slice of its own (room for its expected
  // count and 8 standard deviations), and the slices are packed once the count is right. A
  // chunk that overflows its slice makes the pass write again, at exact offsets.
  const std::size_t chunks = chunk_count(n, hash_chunk);
  std::vector<std::size_t> start(chunks + 1, 0);
  std::optional<pooled_array<std::uint64_t>> slices;
  const std::uint64_t found = gradcomp::detail::random_k_search(n, k, cap, [&](std::uint64_t t, std::uint64_t limit) {
    const std::size_t room = chunk_room(hash_chunk, t);
    const bool sliced = room <= hash_chunk && chunks * room <= 4 * cap + (std::size_t{1} << 16);
    if (sliced && (!slices || slices->size() < chunks * room)) {
      slices.reset();
      slices.emplace(workspace_of(policy), chunks * room);
    }
    std::uint64_t* slice = sliced ? slices->data() : nullptr;
    for_each_chunk(policy, n, hash_chunk, [&](std::size_t c, std::size_t begin, std::size_t end) {
      start[c + 1] = indices_with_hash_at_most(stream, begin, end, t, sliced ? slice + c * room : nullptr,
                                               sliced ? room : 0);
    });
    bool overflow = !sliced;
    for (std::size_t c = 0; c < chunks; ++c) overflow |= start[c + 1] > room;
    std::partial_sum(start.begin(), start.end(), start.begin());
    const std::uint64_t count = start.back();
    if (count < k || count > limit) return count;
    for_each_chunk(policy, n, hash_chunk, [&](std::size_t c, std::size_t begin, std::size_t end) {
      if (overflow)
        indices_with_hash_at_most(stream, begin, end, t, cand + start[c], start[c + 1] - start[c]);
      else
        std::copy(slice + c * room, slice + c * room + (start[c + 1] - start[c]), cand + start[c]);
    });
    return count;
  });

  // The k-th smallest candidate hash: the (found - k + 1)-th largest.
  pooled_array<std::uint64_t> hashes(workspace_of(policy), found);
  std::uint64_t* h = hashes.data();
  for_each_chunk(policy, found, gather_chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    for (std::size_t j = begin; j < end; ++j) h[j] = random_k_hash(stream, cand[j]);
  });
  const std::uint64_t kth = select_kth_largest(std::span<std::uint64_t>(h, found), found - k + 1).key;

  // The candidates at or below it, in order: exactly k of them (the hashes are distinct).
  out.resize(k);
  std::vector<std::size_t> at(chunk_count(found, gather_chunk) + 1, 0);
  for_each_chunk(policy, found, gather_chunk, [&](std::size_t c, std::size_t begin, std::size_t end) {
    std::size_t count = 0;
    for (std::size_t j = begin; j < end; ++j) count += random_k_hash(stream, cand[j]) <= kth;
    at[c + 1] = count;
  });
  std::partial_sum(at.begin(), at.end(), at.begin());
  for_each_chunk(policy, found, gather_chunk, [&](std::size_t c, std::size_t begin, std::size_t end) {
    Index* to = out.data() + at[c];
    for (std::size_t j = begin; j < end; ++j)
      if (random_k_hash(stream, cand[j]) <= kth) *to++ = static_cast<Index>(cand[j]);
  });
}

/// values[j] = the reference's random_k_value of x[indices[j]] (scaled and saturated when
/// Scaled) for j < n.
template <bool Scaled, class T, class Index>
void gather(const T* x, const Index* indices, std::size_t n, T scale, T* values) {
  for (std::size_t j = 0; j < n; ++j) values[j] = gradcomp::detail::random_k_value<Scaled>(x[indices[j]], scale);
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// random_k / unbiased_random_k on exec::par; bit-identical to exec::seq for the same seed
/// and step, and advances step the same way.
template <bool Unbiased, std::floating_point T, class Index>
void compress_with(const par_t& policy, basic_random_k<Unbiased>& c, std::span<const T> x,
                   seeded_sparse_vector<T, Index>& out) {
  using cpu::detail::for_each_chunk;
  using cpu::detail::gather_chunk;
  c.validate();
  gradcomp::detail::check_index_fits<Index>(x.size(), basic_random_k<Unbiased>::name.data());
  const std::size_t d = x.size();
  const std::size_t kept = std::min(c.k, d);
  if (kept == d) {  // every index, in order: no draws (as in the reference)
    out.indices.resize(d);
    for_each_chunk(policy, d, gather_chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
      for (std::size_t j = begin; j < end; ++j) out.indices[j] = static_cast<Index>(j);
    });
  } else {
    cpu::detail::shared_random_indices(policy, d, kept, c.seed, c.step, out.indices);
  }
  // The reference's scale d / k, rounded once to T.
  const T scale = Unbiased && kept > 0 ? static_cast<T>(static_cast<double>(d) / static_cast<double>(kept)) : T(1);
  out.values.resize(kept);
  for_each_chunk(
      policy, kept, gather_chunk,
      [&](std::size_t, std::size_t begin, std::size_t end) {
        cpu::detail::gather<Unbiased>(x.data(), out.indices.data() + begin, end - begin, scale,
                                      out.values.data() + begin);
      },
      cpu::detail::random_access_weight);
  out.dim = d;
  out.seed = c.seed;
  out.step = c.step;
  ++c.step;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
