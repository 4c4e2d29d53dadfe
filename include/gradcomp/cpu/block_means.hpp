#pragma once
// Per-block sums of the sign compressors and onebit on exec::par: the sum of a summand over
// each block of block_size elements in detail::ordered_sum's order, for any block size; and
// the sign compressors' scales from them (||x_block||_1 / |block|).
//
// detail::ordered_sum sums a block in reduction blocks ("segments") of 4096 elements counted
// from the block's own start, and adds the segment sums by a pairwise tree. A block of at
// most 4096 elements is therefore one segment; a longer block is several consecutive
// segments (the last one shorter). Segments are summed wherever their elements are (in
// parallel) and their tree is added once all are known. The summand is a template parameter
// (kernel_types.hpp): |x_i| for the sign scales, onebit's masked leaves for its two means.
#include <array>
#include <cmath>
#include <cstddef>
#include <span>
#include <utility>

#include "../detail/reduce.hpp"
#include "reduce.hpp"
#include "kernel_types.hpp"
#include "simd.hpp"
#include "abi.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

constexpr std::size_t ceil_div(std::size_t a, std::size_t b) noexcept { return a / b + (a % b != 0); }

/// detail::mean_abs(block) given sum, the block's l1_norm in the reference order.
template <class T>
double mean_from_l1(double sum, std::span<const T> block) {
  return gradcomp::detail::mean_abs_from_l1(sum, block);
}

/// How detail::ordered_sum cuts blocks of block_size elements into segments of 4096.
struct block_segments {
  std::size_t dim;
  std::size_t block_size;

  static constexpr std::size_t segment = gradcomp::detail::reduction_block;

  std::size_t blocks() const noexcept { return dim == 0 ? 0 : ceil_div(dim, block_size); }
  std::size_t block_length(std::size_t k) const noexcept {
    return dim - k * block_size < block_size ? dim - k * block_size : block_size;
  }
  /// Segments of a full block; blocks of one segment get their sums in one step.
  std::size_t per_block() const noexcept { return ceil_div(block_size, segment); }
  /// Where the segment sums of block k start in the array of all of them: every block
  /// before the last is full, so block k's sums start at k * per_block(). (Sized this way,
  /// a huge block_size with one short block needs no more sums than it has segments.)
  std::size_t first_sum(std::size_t k) const noexcept { return k * per_block(); }
  std::size_t total_sums() const noexcept {
    const std::size_t n = blocks();
    return n == 0 ? 0 : first_sum(n - 1) + ceil_div(block_length(n - 1), segment);
  }
};

/// For blocks of at most 4096 elements: emit(k, s...) for every block k that starts in
/// [begin, end), with one s per summand F, the reference sum of F over block k (one segment).
/// Blocks are summed in batches, every summand in the same pass over the batch.
template <summand... F, class T, class Emit>
void short_block_sums(std::span<const T> x, const block_segments& layout, std::size_t begin, std::size_t end,
                      Emit&& emit) {
  const std::size_t b = layout.block_size;
  const std::size_t blocks = layout.blocks();
  std::size_t k = ceil_div(begin, b);
  const std::size_t last = ceil_div(end, b) < blocks ? ceil_div(end, b) : blocks;
  constexpr std::size_t batch = 256;
  double sums[sizeof...(F)][batch];
  while (k < last) {
    // Full blocks in batches (the last block of x may be short: on its own).
    std::size_t count = last - k < batch ? last - k : batch;
    std::size_t n = b;
    if (k + count == blocks && layout.block_length(blocks - 1) != b) {
      if (count > 1) {
        --count;
      } else {
        n = layout.block_length(k);
      }
    }
    [&]<std::size_t... J>(std::index_sequence<J...>) {
      double* const out[] = {sums[J]...};
      simd::dispatch([&](auto tag) { strided_block_sums_of_each<F...>(tag, x.data() + k * b, count, b, n, out); });
      for (std::size_t j = 0; j < count; ++j) emit(k + j, sums[J][j]...);
    }(std::make_index_sequence<sizeof...(F)>{});
    k += count;
  }
}

/// For blocks of at most 4096 elements: scales[k] = T(mean_abs(block k)) for every block k
/// that starts in [begin, end).
template <class T>
void block_scales_in(std::span<const T> x, const block_segments& layout, std::size_t begin, std::size_t end,
                     T* scales) {
  short_block_sums<summand::abs>(x, layout, begin, end, [&](std::size_t k, double sum) {
    scales[k] = static_cast<T>(mean_from_l1(sum, x.subspan(k * layout.block_size, layout.block_length(k))));
  });
}

/// For blocks longer than 4096 elements: the sums of every summand F over every segment that
/// starts in [begin, end), in one pass: the i-th summand's at sums[i][layout.first_sum(k) + j]
/// for segment j of block k.
template <summand... F, class T>
void segment_sums_in(std::span<const T> x, const block_segments& layout, std::size_t begin, std::size_t end,
                     const std::array<double*, sizeof...(F)>& sums) {
  constexpr std::size_t B = block_segments::segment;
  const std::size_t b = layout.block_size;
  const std::size_t blocks = layout.blocks();
  for (std::size_t k = begin / b; k < blocks && k * b < end; ++k) {
    const std::size_t start = k * b;
    const std::size_t block_end = start + layout.block_length(k);
    const std::size_t j0 = start >= begin ? 0 : ceil_div(begin - start, B);
    const std::size_t starts_end = end < block_end ? end : block_end;  // segments starting before this
    if (start + j0 * B >= starts_end) continue;
    const std::size_t j1 = ceil_div(starts_end - start, B);
    const std::size_t run_begin = start + j0 * B;
    const std::size_t run_end = start + j1 * B < block_end ? start + j1 * B : block_end;
    // A run of consecutive segments is what block_sums cuts into 4096s from its start.
    std::array<double*, sizeof...(F)> out = sums;
    for (double*& o : out) o += layout.first_sum(k) + j0;
    simd::dispatch(
        [&](auto tag) { block_sums_of_each<F...>(tag, x.data() + run_begin, run_end - run_begin, out.data()); });
  }
}

/// For blocks longer than 4096 elements: block k's sum from its segment sums, added by the
/// pairwise tree as detail::ordered_sum does.
inline double block_total(const block_segments& layout, const double* sums, std::size_t k) {
  const double* s = sums + layout.first_sum(k);
  return sum_of_blocks(std::span<const double>(s, ceil_div(layout.block_length(k), block_segments::segment)));
}

/// For blocks longer than 4096 elements: every block's scale from its segment sums of |x_i|.
template <class T>
void scales_from_segments(std::span<const T> x, const block_segments& layout, const double* sums, T* scales) {
  for (std::size_t k = 0; k < layout.blocks(); ++k)
    scales[k] = static_cast<T>(
        mean_from_l1(block_total(layout, sums, k), x.subspan(k * layout.block_size, layout.block_length(k))));
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
