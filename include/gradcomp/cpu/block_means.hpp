#pragma once
// The per-block scales of the sign compressors on exec::par: ||x_block||_1 / |block| with
// detail::mean_abs's summation order, for any block size.
//
// detail::mean_abs sums a block in reduction blocks ("segments") of 4096 elements counted
// from the block's own start, and adds the segment sums by a pairwise tree. A block of at
// most 4096 elements is therefore one segment; a longer block is several consecutive
// segments (the last one shorter). Segments are summed wherever their elements are (in
// parallel) and their tree is added once all are known.
#include <array>
#include <cmath>
#include <cstddef>
#include <span>

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

/// How detail::mean_abs cuts blocks of block_size elements into segments of 4096.
struct block_segments {
  std::size_t dim;
  std::size_t block_size;

  static constexpr std::size_t segment = gradcomp::detail::reduction_block;

  std::size_t blocks() const noexcept { return dim == 0 ? 0 : ceil_div(dim, block_size); }
  std::size_t block_length(std::size_t k) const noexcept {
    return dim - k * block_size < block_size ? dim - k * block_size : block_size;
  }
  /// Segments of a full block; blocks of one segment get their scale in one step.
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

/// For blocks of at most 4096 elements: scales[k] = T(mean_abs(block k)) for every block k
/// that starts in [begin, end).
template <class T>
void block_scales_in(std::span<const T> x, const block_segments& layout, std::size_t begin, std::size_t end,
                     T* scales) {
  const std::size_t b = layout.block_size;
  const std::size_t blocks = layout.blocks();
  std::size_t k = ceil_div(begin, b);
  const std::size_t last = ceil_div(end, b) < blocks ? ceil_div(end, b) : blocks;
  constexpr std::size_t batch = 256;
  double sums[batch];
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
    simd::dispatch([&](auto tag) { strided_block_sums<summand::abs>(tag, x.data() + k * b, count, b, n, sums); });
    for (std::size_t j = 0; j < count; ++j)
      scales[k + j] = static_cast<T>(mean_from_l1(sums[j], x.subspan((k + j) * b, n)));
    k += count;
  }
}

/// For blocks longer than 4096 elements: the sums of every segment that starts in
/// [begin, end), at sums[layout.first_sum(k) + j] for segment j of block k.
template <class T>
void segment_sums_in(std::span<const T> x, const block_segments& layout, std::size_t begin, std::size_t end,
                     double* sums) {
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
    block_sums<summand::abs>(x.data() + run_begin, run_end - run_begin, sums + layout.first_sum(k) + j0);
  }
}

/// For blocks longer than 4096 elements: every block's scale from its segment sums, added
/// by the pairwise tree as detail::ordered_sum does.
template <class T>
void scales_from_segments(std::span<const T> x, const block_segments& layout, const double* sums, T* scales) {
  constexpr std::size_t B = block_segments::segment;
  for (std::size_t k = 0; k < layout.blocks(); ++k) {
    const std::size_t n = layout.block_length(k);
    const double* s = sums + layout.first_sum(k);
    const double total = sum_of_blocks(std::span<const double>(s, ceil_div(n, B)));
    scales[k] = static_cast<T>(mean_from_l1(total, x.subspan(k * layout.block_size, n)));
  }
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
