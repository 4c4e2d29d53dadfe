#pragma once
// onebit on exec::par: one pass over x that computes, chunk by chunk, the sign bits of the
// chunk's 64-bit words and, per block, the three sums its two means need (detail/
// group_means.hpp): |x_i| over the negatives, |x_i| over the others, and the count of the
// negatives, each with its masked leaf in the reference's order, all three from one load of
// each row (cpu/block_means.hpp, the machinery of the sign scales). Bit-identical to
// detail::onebit_compress: the sums are the reference's trees, the count is exact, and the
// means come from the same functions.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/onebit.hpp"
#include "../detail/bits.hpp"
#include "../detail/group_means.hpp"
#include "../payload/two_level.hpp"
#include "block_means.hpp"
#include "kernel_types.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "sign.hpp"
#include "simd.hpp"
#include "workspace.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// A block's low and high from its three sums in the reference order (negatives' |x_i|, the
/// others' |x_i|, the count of negatives), as detail::onebit_compress forms them. The rare
/// rescue of a double sum that overflowed re-reads the block (the reference's code).
template <class T>
void two_level_block(std::span<const T> block, double negative_sum, double nonnegative_sum, double negative_count,
                     T& low, T& high) {
  const auto n0 = static_cast<std::size_t>(negative_count);  // an exact count
  low = gradcomp::detail::two_level_low<T>(gradcomp::detail::group_mean_from_sum(negative_sum, block, true, n0));
  high = gradcomp::detail::two_level_high<T>(
      gradcomp::detail::group_mean_from_sum(nonnegative_sum, block, false, block.size() - n0));
}

/// detail::onebit_compress(x, b, out) on exec::par (b >= 1: the compressor checks it).
template <class T>
void onebit_compress(const exec::par_t& policy, std::span<const T> x, std::size_t b, two_level_vector<T>& out) {
  const std::size_t d = x.size();
  const block_segments layout{d, b};
  const bool short_blocks = b <= block_segments::segment;  // one segment per block: done in its chunk
  // Every low, high and word is written below, so resize (no zero-filling pass once out is
  // warm) instead of the reference's reset.
  out.lows.resize(layout.blocks());
  out.highs.resize(layout.blocks());
  out.negative.resize(gradcomp::detail::words_for_bits(d));
  out.dim = d;
  out.block_size = b;
  // Longer blocks: their segment sums, three arrays of them, added up once every chunk is done.
  const std::size_t m = short_blocks ? 0 : layout.total_sums();
  pooled_array<double> sums(workspace_of(policy), 3 * m);
  double* negative_sums = sums.data();
  double* nonnegative_sums = negative_sums + m;
  double* negative_counts = nonnegative_sums + m;
  T* lows = out.lows.data();
  T* highs = out.highs.data();
  std::uint64_t* words = out.negative.data();
  const auto block_of = [&](std::size_t k) { return x.subspan(k * b, layout.block_length(k)); };
  for_each_chunk(policy, d, sign_chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    if (short_blocks) {
      short_block_sums<summand::negative_abs, summand::nonnegative_abs, summand::negative_count>(
          x, layout, begin, end, [&](std::size_t k, double s0, double s1, double n0) {
            two_level_block(block_of(k), s0, s1, n0, lows[k], highs[k]);
          });
    } else {
      segment_sums_in<summand::negative_abs, summand::nonnegative_abs, summand::negative_count>(
          x, layout, begin, end, {negative_sums, nonnegative_sums, negative_counts});
    }
    simd::dispatch([&](auto tag) { pack_negative(tag, x.data() + begin, end - begin, words + begin / 64); });
  });
  if (!short_blocks)
    for (std::size_t k = 0; k < layout.blocks(); ++k)
      two_level_block(block_of(k), block_total(layout, negative_sums, k), block_total(layout, nonnegative_sums, k),
                      block_total(layout, negative_counts, k), lows[k], highs[k]);
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// onebit on exec::par; bit-identical to exec::seq.
template <std::floating_point T>
void compress_with(const par_t& policy, const onebit& c, std::span<const T> x, two_level_vector<T>& out) {
  c.validate();
  cpu::detail::onebit_compress(policy, x, c.block_size, out);
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
