#pragma once
// random_k and unbiased_random_k on exec::par. The indices are the reference's own
// (detail::shared_random_indices: Floyd's algorithm is a chain of draws where each depends
// on the set built so far, so it stays sequential; it is O(k)); the values are gathered in
// parallel. When k >= d every index is kept and the index list is filled in parallel.
#include <algorithm>
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

namespace gradcomp::cpu::detail {

/// Entries per chunk of the gather: random reads cost more than streaming ones.
inline constexpr std::size_t gather_chunk = std::size_t{1} << 14;

/// values[j] = x[indices[j]] (scaled: scale * x[indices[j]]) for j < n.
template <bool Scaled, class T, class Index>
void gather(const T* x, const Index* indices, std::size_t n, T scale, T* values) {
  for (std::size_t j = 0; j < n; ++j) values[j] = Scaled ? scale * x[indices[j]] : x[indices[j]];
}

}  // namespace gradcomp::cpu::detail

namespace gradcomp::exec {

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
    gradcomp::detail::shared_random_indices(d, kept, c.seed, c.step, out.indices);
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

}  // namespace gradcomp::exec
