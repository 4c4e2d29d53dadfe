#pragma once
// random_k and unbiased_random_k on exec::par. The indices are the reference's own
// (detail::shared_random_indices): Floyd's algorithm is a chain of draws where each depends
// on the set built so far, so the draws stay on the calling thread. What is around them is
// parallel: the membership bitmap (n bits, reused) is zeroed and scanned by the workers, and
// the values are gathered in parallel. When k >= d every index is kept and the index list is
// filled in parallel.
#include <algorithm>
#include <bit>
#include <numeric>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../compressors/random_k.hpp"
#include "../detail/bits.hpp"
#include "../detail/random.hpp"
#include "../payload/seeded_sparse.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

inline constexpr std::size_t gather_chunk = tuning::scatter::chunk;
inline constexpr std::size_t bitmap_chunk = tuning::random_k::bitmap_chunk;

/// detail::shared_random_indices on exec::par: in the bitmap case, the same Floyd draws on
/// the calling thread into a pooled bitmap that the workers zero first and scan after (a
/// count per chunk, then every chunk writes its indices at its offset); else the reference.
template <class Index>
void shared_random_indices(const exec::par_t& policy, std::uint64_t n, std::uint64_t k, std::uint64_t seed,
                           std::uint64_t step, std::vector<Index>& out) {
  if (k == 0 || k == n || !gradcomp::detail::random_indices_use_bitmap(n, k))
    return gradcomp::detail::shared_random_indices(n, k, seed, step, out);
  out.resize(k);
  const std::size_t words = n / 64 + 1;
  pooled_array<std::uint64_t> bitmap(workspace_of(policy), words);  // uninitialised; reused across calls
  std::uint64_t* bits = bitmap.data();
  for_each_chunk(policy, words, bitmap_chunk,
                 [&](std::size_t, std::size_t begin, std::size_t end) { std::fill(bits + begin, bits + end, 0); });
  gradcomp::detail::floyd_into_bitmap(n, k, gradcomp::detail::counter_stream(seed, step), bits);
  std::vector<std::size_t> start(chunk_count(words, bitmap_chunk) + 1, 0);
  for_each_chunk(policy, words, bitmap_chunk, [&](std::size_t c, std::size_t begin, std::size_t end) {
    std::size_t count = 0;
    for (std::size_t w = begin; w < end; ++w) count += static_cast<std::size_t>(std::popcount(bits[w]));
    start[c + 1] = count;
  });
  std::partial_sum(start.begin(), start.end(), start.begin());
  for_each_chunk(policy, words, bitmap_chunk, [&](std::size_t c, std::size_t begin, std::size_t end) {
    std::size_t pos = start[c];
    for (std::size_t w = begin; w < end; ++w)
      for (std::uint64_t word = bits[w]; word != 0; word &= word - 1)
        out[pos++] = static_cast<Index>(w * 64 + static_cast<std::uint64_t>(std::countr_zero(word)));
  });
}

/// values[j] = x[indices[j]] (scaled: scale * x[indices[j]]) for j < n.
template <bool Scaled, class T, class Index>
void gather(const T* x, const Index* indices, std::size_t n, T scale, T* values) {
  for (std::size_t j = 0; j < n; ++j) values[j] = Scaled ? scale * x[indices[j]] : x[indices[j]];
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
        if constexpr (Unbiased)  // the reference's overflow rule: +-max(T), never +-inf, for finite x_i
          gradcomp::detail::saturate_scaled_overflow(x.data(), out.indices.data() + begin, out.values.data() + begin,
                                                     end - begin);
      },
      cpu::detail::random_access_weight);
  out.dim = d;
  out.seed = c.seed;
  out.step = c.step;
  ++c.step;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
