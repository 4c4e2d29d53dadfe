#pragma once
// onebit on the GPU: per block of b elements the two means of detail/group_means.hpp and one
// bit per element, the same bits as exec::seq. Built from the sign compressors' pieces
// (cuda/sign.cuh) with three sums per block instead of one:
//
//   - bits: sign_bits_async, warp ballots of detail::sign_bit_of;
//   - sums: channel 0 sums group_abs_summand over the negatives, channel 1 over the others,
//     channel 2 counts the negatives (group_count_summand: exact). A block of n elements is
//     summed as the reference sums a vector of n: its 4096-element reduction blocks by
//     reference_block_sum, one CUDA block each (all three channels), then the pairwise tree over
//     them (one thread per block, or tree_sum_kernel per channel when there is one block);
//   - the means: detail::group_mean_of, two_level_low / two_level_high; for double input whose
//     group sum overflowed although its mean fits, the reference's rescue: the group's largest
//     finite |x_i| per block (an integer atomicMax on its bits), then the group's sum again on
//     |x_i| * 2^-e. Those kernels run for double input only and do nothing for groups whose sum
//     is finite.
// Nothing waits for the host. Blocks below 4096 elements get a CUDA block each (b = 1 is
// correct but slow). Compiled, never run on a GPU.
#include <cuda_runtime_api.h>

#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/onebit.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/group_means.hpp"
#include "../detail/reduce.hpp"
#include "decompress.cuh"
#include "error.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "reduce.cuh"
#include "sign.cuh"
#include "tuning.cuh"
#include "two_level_vector.cuh"

namespace gradcomp::cuda::detail {

/// The channels of onebit's sums: the negatives' |x_i|, the others' |x_i| (the two groups, in
/// the order of group_abs_summand's `negatives` = true, false), and the count of negatives.
inline constexpr int onebit_channels = 3;
inline constexpr int onebit_count_channel = 2;

/// Group g's flag for group_abs_summand: group 0 is the negatives.
__host__ __device__ constexpr bool onebit_negatives(int g) { return g == 0; }

/// partial[c * pairs + p] = the reference block sum of channel c over the pair's reduction
/// block; with Rescue, only the two group channels, on |x_i| 2^-shift, for the blocks whose
/// group sum overflowed (the others are skipped).
template <class T, bool Rescue>
__global__ void __launch_bounds__(tuning::reduce::block_threads)
    onebit_partial_kernel(const T* x, sign_layout layout, const double* sums, const unsigned long long* largest,
                          double* partial) {
  const std::size_t pairs = layout.pairs();
  for (std::size_t p = blockIdx.x; p < pairs; p += gridDim.x) {
    const std::size_t s = p / layout.per_block, r = p % layout.per_block;
    if (r >= layout.reduction_blocks(s)) continue;  // the last block may be shorter
    const T* block = x + layout.begin(s);
    const std::size_t n = layout.size(s);
    if constexpr (Rescue) {
      for (int g = 0; g < 2; ++g) {  // the condition is the same for every thread of the CUDA block
        const std::size_t at = static_cast<std::size_t>(g) * layout.blocks + s;
        if (!std::isinf(sums[at]) || largest[at] == 0) continue;  // no rescue needed, or none possible
        const int shift = rescue_shift(largest[at]);
        const bool negatives = onebit_negatives(g);
        const double sum = reference_block_sum(n, r, [&](std::size_t i) {
          return gradcomp::detail::group_scaled_abs_summand(block[i], negatives, shift);
        });
        if (threadIdx.x == 0) partial[static_cast<std::size_t>(g) * pairs + p] = sum;
      }
    } else {
      for (int g = 0; g < 2; ++g) {
        const bool negatives = onebit_negatives(g);
        const double sum = reference_block_sum(
            n, r, [&](std::size_t i) { return gradcomp::detail::group_abs_summand(block[i], negatives); });
        if (threadIdx.x == 0) partial[static_cast<std::size_t>(g) * pairs + p] = sum;
      }
      const double count =
          reference_block_sum(n, r, [&](std::size_t i) { return gradcomp::detail::group_count_summand(block[i]); });
      if (threadIdx.x == 0) partial[static_cast<std::size_t>(onebit_count_channel) * pairs + p] = count;
    }
  }
}

/// sums[c * blocks + s] = the pairwise tree over block s's partial sums of channel c (one
/// thread per block). With Rescue, only the group channels of the blocks that need it (by
/// sums_before).
template <bool Rescue>
__global__ void onebit_tree_kernel(sign_layout layout, const double* partial, const double* sums_before,
                                   const unsigned long long* largest, double* sums) {
  for (std::size_t s = global_thread(); s < layout.blocks; s += grid_threads()) {
    const std::size_t m = layout.reduction_blocks(s);
    for (int c = 0; c < (Rescue ? 2 : onebit_channels); ++c) {
      const std::size_t at = static_cast<std::size_t>(c) * layout.blocks + s;
      if (Rescue && (!std::isinf(sums_before[at]) || largest[at] == 0)) continue;
      const double* leaves = partial + static_cast<std::size_t>(c) * layout.pairs() + s * layout.per_block;
      const auto leaf = [leaves](std::size_t i) { return leaves[i]; };
      sums[at] = gradcomp::detail::aligned_run_sum<54>(leaf, 0, std::bit_ceil(m), m);
    }
  }
}

/// Where the rescue's largest |x_i| of element i's group in its block goes: largest[g * blocks
/// + s], for the groups whose sum overflowed.
template <class T>
struct onebit_rescue_target {
  const T* x;
  sign_layout layout;
  const double* sums;
  unsigned long long* largest;
  __device__ unsigned long long* operator()(std::size_t i) const {
    const std::size_t g = gradcomp::detail::sign_bit_of(x[i]) ? 0 : 1;
    const std::size_t at = g * layout.blocks + i / layout.b;
    return std::isinf(sums[at]) ? &largest[at] : nullptr;
  }
};

/// One group's mean: the plain one, or (double input, an overflowed sum, a finite entry) the
/// rescued one, as detail::group_mean_from_sum decides.
template <class T>
__device__ double onebit_group_mean(double sum, double count, const double* rescued, const unsigned long long* largest,
                                    std::size_t at) {
  if (gradcomp::detail::group_needs_rescue<T>(sum) && largest != nullptr && largest[at] != 0)
    return gradcomp::detail::rescued_mean(rescued[at], count, rescue_shift(largest[at]));
  return gradcomp::detail::group_mean_of(sum, count);
}

/// lows[s] and highs[s] from block s's sums (and rescued sums).
template <class T>
__global__ void onebit_means_kernel(sign_layout layout, const double* sums, const double* rescued,
                                    const unsigned long long* largest, T* lows, T* highs) {
  for (std::size_t s = global_thread(); s < layout.blocks; s += grid_threads()) {
    const double n0 = sums[static_cast<std::size_t>(onebit_count_channel) * layout.blocks + s];  // exact
    const double n1 = static_cast<double>(layout.size(s)) - n0;
    lows[s] = gradcomp::detail::two_level_low<T>(onebit_group_mean<T>(sums[s], n0, rescued, largest, s));
    highs[s] = gradcomp::detail::two_level_high<T>(
        onebit_group_mean<T>(sums[layout.blocks + s], n1, rescued, largest, layout.blocks + s));
  }
}

/// A two-level payload's element i: its block's low where bit i is set, its high elsewhere.
template <class T>
struct two_level_decoded {
  const T* lows;
  const T* highs;
  const std::uint64_t* negative;
  std::size_t b;
  __device__ T operator()(std::size_t i) const {
    const std::size_t k = i / b;
    return gradcomp::detail::two_level_value(lows[k], highs[k], ((negative[i / 64] >> (i % 64)) & 1u) != 0);
  }
};

/// out = onebit with blocks of b elements of x: lows, highs and bits.
template <class T>
void onebit_compress(const par_t& policy, std::span<const T> x, std::size_t b, cuda::two_level_vector<T>& out) {
  const char* where = "onebit";
  const std::size_t d = x.size();
  out.prepare(d, b);
  if (d == 0) return;
  const sign_layout layout = make_sign_layout(d, b);
  constexpr bool may_rescue = sizeof(T) == 8;  // a float block cannot overflow a double sum
  const std::size_t channels = onebit_channels;

  temp_layout temp;
  const std::size_t partial_slot = temp.add(channels * layout.pairs() * sizeof(double));
  const std::size_t sums_slot = temp.add(channels * layout.blocks * sizeof(double));
  const std::size_t largest_slot = temp.add(may_rescue ? 2 * layout.blocks * sizeof(unsigned long long) : 0);
  const std::size_t rescued_slot = temp.add(may_rescue ? 2 * layout.blocks * sizeof(double) : 0);
  void* base = policy.workspace().reserve(temp.total(), policy.stream);
  auto* partial = static_cast<double*>(temp.at(base, partial_slot));
  auto* sums = static_cast<double*>(temp.at(base, sums_slot));
  auto* largest = may_rescue ? static_cast<unsigned long long*>(temp.at(base, largest_slot)) : nullptr;
  auto* rescued = may_rescue ? static_cast<double*>(temp.at(base, rescued_slot)) : nullptr;
  cudaStream_t stream = policy.stream;

  sign_bits_async(policy, x, out.negative(), where);

  const unsigned pair_grid = grid_for(layout.pairs(), 1, tuning::reduce::max_blocks);
  const unsigned block_grid =
      grid_for(layout.blocks, tuning::elementwise::block_threads, tuning::elementwise::max_blocks);
  onebit_partial_kernel<T, false><<<pair_grid, tuning::reduce::block_threads, 0, stream>>>(x.data(), layout, nullptr,
                                                                                          nullptr, partial);
  check_launch(where, "onebit_partial_kernel");
  if (layout.blocks == 1) {  // one block (the default): many partial sums per channel, added by 1024 threads
    for (std::size_t c = 0; c < channels; ++c)
      add_block_sums_async(policy, partial + c * layout.pairs(), layout.reduction_blocks(0),
                           sums + c * layout.blocks);
  } else {
    onebit_tree_kernel<false><<<block_grid, tuning::elementwise::block_threads, 0, stream>>>(layout, partial, nullptr,
                                                                                             nullptr, sums);
    check_launch(where, "onebit_tree_kernel");
  }
  if constexpr (may_rescue) {
    check(cudaMemsetAsync(largest, 0, 2 * layout.blocks * sizeof(unsigned long long), stream), where,
          "cudaMemsetAsync");
    largest_finite_kernel<<<elementwise_grid(d), tuning::elementwise::block_threads, 0, stream>>>(
        x.data(), d, onebit_rescue_target<T>{x.data(), layout, sums, largest});
    check_launch(where, "largest_finite_kernel");
    onebit_partial_kernel<T, true><<<pair_grid, tuning::reduce::block_threads, 0, stream>>>(x.data(), layout, sums,
                                                                                           largest, partial);
    check_launch(where, "onebit_partial_kernel (rescue)");
    onebit_tree_kernel<true><<<block_grid, tuning::elementwise::block_threads, 0, stream>>>(layout, partial, sums,
                                                                                            largest, rescued);
    check_launch(where, "onebit_tree_kernel (rescue)");
  }
  onebit_means_kernel<<<block_grid, tuning::elementwise::block_threads, 0, stream>>>(layout, sums, rescued, largest,
                                                                                     out.lows(), out.highs());
  check_launch(where, "onebit_means_kernel");
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = onebit(x), x in device memory.
template <std::floating_point T>
void compress_with(const par_t& policy, const onebit& c, std::span<const T> x, two_level_vector<T>& out) {
  c.validate();
  detail::onebit_compress(policy, x, c.block_size, out);
}

/// dense += alpha * decode(p), dense in device memory of p.dim() elements.
template <std::floating_point T>
void decompress_add_with(const par_t& policy, const two_level_vector<T>& p, std::span<T> dense, T alpha) {
  detail::add_decoded(policy, p.dim(),
                      detail::two_level_decoded<T>{p.lows(), p.highs(), p.negative(), p.block_size()}, dense, alpha);
}

template <class T>
struct device_payload<onebit, T> {
  using type = two_level_vector<T>;
};

}  // namespace gradcomp::cuda
