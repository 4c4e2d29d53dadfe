#pragma once
// Parallel, vectorised versions of detail/reduce.hpp's sums, bit-identical to them.
//
// The reference tree splits into independent pieces that map onto threads: every block of
// 4096 elements is a subtree (summed by the SIMD kernel of simd/reduce-inl.hpp), and the
// pairwise tree over the block sums is added on the calling thread afterwards (one add per
// 4096 elements). Threads compute the block sums of whole chunks.
#include <cmath>
#include <cstddef>
#include <span>

#include "../detail/reduce.hpp"
#include "kernel_types.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// The reference block sums of f over x[0, n): out[b] = sum of block b.
template <summand F, class T>
void block_sums(const T* x, std::size_t n, double* out) {
  simd::dispatch([&](auto tag) { block_sums<F>(tag, x, n, out); });
}

/// The pairwise tree over precomputed block sums (detail::ordered_sum's outer tree).
inline double sum_of_blocks(std::span<const double> sums) {
  return gradcomp::detail::pairwise_sum(sums.size(), [&](std::size_t b) { return sums[b]; });
}

/// The reference ordered_sum of f over x (detail/reduce.hpp), computed in parallel.
template <summand F, class T>
double ordered_sum(const exec::par_t& policy, std::span<const T> x) {
  constexpr std::size_t B = gradcomp::detail::reduction_block;
  constexpr std::size_t chunk = tuning::reduce::blocks_per_chunk * B;
  pooled_array<double> sums(workspace_of(policy), chunk_count(x.size(), B));
  for_each_chunk(policy, x.size(), chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    block_sums<F>(x.data() + begin, end - begin, sums.data() + begin / B);
  });
  return sum_of_blocks(sums.span());
}

/// detail::l1_norm on exec::par.
template <class T>
double l1_norm(const exec::par_t& policy, std::span<const T> x) {
  return ordered_sum<summand::abs>(policy, x);
}

/// detail::squared_norm on exec::par.
template <class T>
double squared_norm(const exec::par_t& policy, std::span<const T> x) {
  return ordered_sum<summand::square>(policy, x);
}

/// detail::mean_abs on exec::par (the rare overflow rescue runs the reference).
template <class T>
double mean_abs(const exec::par_t& policy, std::span<const T> x) {
  return gradcomp::detail::mean_abs_from_l1(l1_norm(policy, x), x);
}

/// detail::l2_norm on exec::par (the rare overflow/underflow rescue runs the reference).
template <class T>
double l2_norm(const exec::par_t& policy, std::span<const T> x) {
  return gradcomp::detail::l2_norm_from_squares(squared_norm(policy, x), x);
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
