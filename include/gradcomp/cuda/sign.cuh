#pragma once
// sign, scaled_sign and blockwise_sign on the GPU: per block of b elements the scale (1 for
// the unscaled sign)
// mean_abs(block) = ||x_block||_1 / |block| in the reference order (detail/reduce.hpp), and
// one bit per element, set where detail::sign_bit_of(x_i). The same bits as exec::seq.
//
//   - bits: each warp packs 32 elements with a ballot into one 32-bit half of a sign word
//     (little-endian: bit i of word i / 64 is bit i % 32 of half i / 32);
//   - sums: a sign block of n elements is summed as the reference sums a vector of n: its
//     4096-element reduction blocks (counted from the sign block's start) by
//     reference_block_sum, one CUDA block each, then the pairwise tree over them (one thread
//     per sign block, or tree_sum_kernel when there is one sign block, as for scaled_sign);
//   - the mean: sum / n rounded to T; for double input whose sum overflowed although its mean
//     fits, the reference's rescue (detail::mean_abs_from_l1): the largest finite |x_i| per
//     sign block (an integer atomicMax on its bits), then the sum again on |x_i| * 2^-e. Those
//     kernels run for double input only and do nothing for blocks whose sum is finite.
// Nothing waits for the host. A block size below 4096 gives each sign block a CUDA block of
// its own, so very small blocks (b = 1) are correct but slow.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/blockwise_sign.hpp"
#include "../compressors/scaled_sign.hpp"
#include "../compressors/sign.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/reduce.hpp"
#include "decompress.cuh"
#include "error.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "reduce.cuh"
#include "sign_vector.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// The sign blocks of x and their reduction blocks: sign block s covers [s b, s b + n_s),
/// reduction block r of it [s b + 4096 r, ...); pair p = s * per_block + r.
struct sign_layout {
  std::size_t d;
  std::size_t b;          // elements per sign block, at most d
  std::size_t blocks;     // sign blocks
  std::size_t per_block;  // reduction blocks of a full sign block
  __host__ __device__ std::size_t begin(std::size_t s) const { return s * b; }
  __host__ __device__ std::size_t size(std::size_t s) const { return d - s * b < b ? d - s * b : b; }
  __host__ __device__ std::size_t reduction_blocks(std::size_t s) const {
    return (size(s) + gradcomp::detail::reduction_block - 1) / gradcomp::detail::reduction_block;
  }
  __host__ __device__ std::size_t pairs() const { return blocks * per_block; }
};

inline sign_layout make_sign_layout(std::size_t d, std::size_t b) {
  const std::size_t eff = d == 0 ? 1 : std::min(b, d);
  const std::size_t blocks = d == 0 ? 0 : (d - 1) / eff + 1;
  return {d, eff, blocks, (eff + gradcomp::detail::reduction_block - 1) / gradcomp::detail::reduction_block};
}

/// Sign bits: 32-bit half h of the sign words = the ballot of elements 32 h .. 32 h + 31.
template <class T>
__global__ void sign_bits_kernel(const T* x, std::size_t d, std::uint32_t* halves, std::size_t half_count) {
  const std::size_t warp = global_thread() / 32, warps = grid_threads() / 32;
  const unsigned lane = threadIdx.x % 32;
  for (std::size_t h = warp; h < half_count; h += warps) {
    const std::size_t i = h * 32 + lane;
    const unsigned bits = __ballot_sync(0xffffffffu, i < d && gradcomp::detail::sign_bit_of(x[i]));
    if (lane == 0) halves[h] = bits;
  }
}

/// partial[p] = the reference block sum of the pair's reduction block: |x_i|, or with Rescue
/// |x_i| 2^-shift for the sign blocks whose plain sum overflowed (others are skipped).
template <class T, bool Rescue>
__global__ void __launch_bounds__(tuning::reduce::block_threads)
    sign_partial_kernel(const T* x, sign_layout layout, const double* sums, const unsigned long long* largest,
                        double* partial) {
  for (std::size_t p = blockIdx.x; p < layout.pairs(); p += gridDim.x) {
    const std::size_t s = p / layout.per_block, r = p % layout.per_block;
    if (r >= layout.reduction_blocks(s)) continue;  // the last sign block may be shorter
    const T* block = x + layout.begin(s);
    if constexpr (Rescue) {
      if (!std::isinf(sums[s]) || largest[s] == 0) continue;  // no rescue needed, or none possible
      const int shift = rescue_shift(largest[s]);
      const double sum = reference_block_sum(
          layout.size(s), r, [&](std::size_t i) { return gradcomp::detail::scaled_abs_summand(block[i], shift); });
      if (threadIdx.x == 0) partial[p] = sum;
    } else {
      const double sum =
          reference_block_sum(layout.size(s), r, [&](std::size_t i) { return gradcomp::detail::abs_summand(block[i]); });
      if (threadIdx.x == 0) partial[p] = sum;
    }
  }
}

/// sums[s] = the pairwise tree over sign block s's partial sums (one thread per sign block).
/// With Rescue, only the blocks that need it (by sums_before).
template <bool Rescue>
__global__ void sign_tree_kernel(sign_layout layout, const double* partial, const double* sums_before,
                                 const unsigned long long* largest, double* sums) {
  for (std::size_t s = global_thread(); s < layout.blocks; s += grid_threads()) {
    if (Rescue && (!std::isinf(sums_before[s]) || largest[s] == 0)) continue;
    const double* leaves = partial + s * layout.per_block;
    const std::size_t m = layout.reduction_blocks(s);
    const auto leaf = [leaves](std::size_t i) { return leaves[i]; };
    sums[s] = gradcomp::detail::aligned_run_sum<54>(leaf, 0, std::bit_ceil(m), m);
  }
}

/// Where the rescue's largest |x_i| of sign block s goes: largest[s], for the blocks whose sum
/// overflowed.
struct sign_rescue_target {
  sign_layout layout;
  const double* sums;
  unsigned long long* largest;
  __device__ unsigned long long* operator()(std::size_t i) const {
    const std::size_t s = i / layout.b;
    return std::isinf(sums[s]) ? &largest[s] : nullptr;
  }
};

/// scales[s] = T(sum / n), or the rescued mean.
template <class T>
__global__ void sign_scales_kernel(sign_layout layout, const double* sums, const double* rescued,
                                   const unsigned long long* largest, T* scales) {
  for (std::size_t s = global_thread(); s < layout.blocks; s += grid_threads()) {
    const double n = static_cast<double>(layout.size(s));
    double mean = sums[s] / n;
    if (sizeof(T) == 8 && std::isinf(sums[s]) && largest != nullptr && largest[s] != 0)
      mean = gradcomp::detail::rescued_mean(rescued[s], n, rescue_shift(largest[s]));
    scales[s] = static_cast<T>(mean);
  }
}

/// A sign payload's element i: its block's scale, negated where bit i is set.
template <class T>
struct sign_decoded {
  const T* scales;
  const std::uint64_t* negative;
  std::size_t b;
  __device__ T operator()(std::size_t i) const {
    return gradcomp::detail::signed_scale(scales[i / b], ((negative[i / 64] >> (i % 64)) & 1u) != 0);
  }
};

/// The sign bits of x into words (every one of the ceil(|x| / 64), bits past |x| zero), from
/// warp ballots: the bits of the sign and two-level payloads.
template <class T>
void sign_bits_async(const par_t& policy, std::span<const T> x, std::uint64_t* words, const char* where) {
  const std::size_t half_count = 2 * gradcomp::detail::words_for_bits(x.size());
  sign_bits_kernel<<<grid_for(half_count * 32, tuning::elementwise::block_threads, tuning::elementwise::max_blocks),
                     tuning::elementwise::block_threads, 0, policy.stream>>>(
      x.data(), x.size(), reinterpret_cast<std::uint32_t*>(words), half_count);
  check_launch(where, "sign_bits_kernel");
}

/// out's sign bits.
template <class T>
void sign_bits_async(const par_t& policy, std::span<const T> x, cuda::sign_vector<T>& out, const char* where) {
  sign_bits_async(policy, x, out.negative(), where);
}

template <class T>
__global__ void scale_value_kernel(T* scales, T value) {
  scales[0] = value;
}

/// out = blocks of b elements of x: scales and sign bits.
template <class T>
void sign_compress(const par_t& policy, std::span<const T> x, std::size_t b, cuda::sign_vector<T>& out) {
  const char* where = "sign_compress";
  const std::size_t d = x.size();
  out.prepare(d, b);
  if (d == 0) return;
  const sign_layout layout = make_sign_layout(d, b);
  constexpr bool may_rescue = sizeof(T) == 8;  // a float block cannot overflow a double sum

  temp_layout temp;
  const std::size_t partial_slot = temp.add(layout.pairs() * sizeof(double));
  const std::size_t sums_slot = temp.add(layout.blocks * sizeof(double));
  const std::size_t largest_slot = temp.add(may_rescue ? layout.blocks * sizeof(unsigned long long) : 0);
  const std::size_t rescued_slot = temp.add(may_rescue ? layout.blocks * sizeof(double) : 0);
  void* base = policy.workspace().reserve(temp.total(), policy.stream);
  auto* partial = static_cast<double*>(temp.at(base, partial_slot));
  auto* sums = static_cast<double*>(temp.at(base, sums_slot));
  auto* largest = may_rescue ? static_cast<unsigned long long*>(temp.at(base, largest_slot)) : nullptr;
  auto* rescued = may_rescue ? static_cast<double*>(temp.at(base, rescued_slot)) : nullptr;
  cudaStream_t stream = policy.stream;

  sign_bits_async(policy, x, out, where);

  const unsigned pair_grid = grid_for(layout.pairs(), 1, tuning::reduce::max_blocks);
  const unsigned block_grid = grid_for(layout.blocks, tuning::elementwise::block_threads, tuning::elementwise::max_blocks);
  sign_partial_kernel<T, false><<<pair_grid, tuning::reduce::block_threads, 0, stream>>>(x.data(), layout, nullptr,
                                                                                        nullptr, partial);
  check_launch(where, "sign_partial_kernel");
  if (layout.blocks == 1) {  // one sign block (scaled_sign): many partial sums, added by 1024 threads
    add_block_sums_async(policy, partial, layout.reduction_blocks(0), sums);
  } else {
    sign_tree_kernel<false><<<block_grid, tuning::elementwise::block_threads, 0, stream>>>(layout, partial, nullptr,
                                                                                           nullptr, sums);
    check_launch(where, "sign_tree_kernel");
  }
  if constexpr (may_rescue) {
    check(cudaMemsetAsync(largest, 0, layout.blocks * sizeof(unsigned long long), stream), where, "cudaMemsetAsync");
    largest_finite_kernel<<<elementwise_grid(d), tuning::elementwise::block_threads, 0, stream>>>(
        x.data(), d, sign_rescue_target{layout, sums, largest});
    check_launch(where, "largest_finite_kernel");
    sign_partial_kernel<T, true><<<pair_grid, tuning::reduce::block_threads, 0, stream>>>(x.data(), layout, sums,
                                                                                         largest, partial);
    check_launch(where, "sign_partial_kernel (rescue)");
    sign_tree_kernel<true><<<block_grid, tuning::elementwise::block_threads, 0, stream>>>(layout, partial, sums,
                                                                                          largest, rescued);
    check_launch(where, "sign_tree_kernel (rescue)");
  }
  sign_scales_kernel<<<block_grid, tuning::elementwise::block_threads, 0, stream>>>(layout, sums, rescued, largest,
                                                                                    out.scales());
  check_launch(where, "sign_scales_kernel");
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = scaled_sign(x), x in device memory: one block of d elements.
/// out = sign(x) (one block of d, the compressor's fixed scale), x in device memory.
template <std::floating_point T>
void compress_with(const par_t& policy, const sign& c, std::span<const T> x, sign_vector<T>& out) {
  const T scale = c.scale_as<T>();
  out.prepare(x.size(), std::max<std::size_t>(x.size(), 1));
  if (x.empty()) return;
  detail::sign_bits_async(policy, x, out, "sign");
  detail::scale_value_kernel<<<1, 1, 0, policy.stream>>>(out.scales(), scale);
  detail::check_launch("sign", "scale_value_kernel");
}

template <std::floating_point T>
void compress_with(const par_t& policy, const scaled_sign&, std::span<const T> x, sign_vector<T>& out) {
  detail::sign_compress(policy, x, x.empty() ? std::size_t{1} : x.size(), out);
}

/// out = blockwise_sign(x), x in device memory.
template <std::floating_point T>
void compress_with(const par_t& policy, const blockwise_sign& c, std::span<const T> x, sign_vector<T>& out) {
  c.validate();
  detail::sign_compress(policy, x, c.block_size, out);
}

/// dense += alpha * decode(p), dense in device memory of p.dim() elements.
template <std::floating_point T>
void decompress_add_with(const par_t& policy, const sign_vector<T>& p, std::span<T> dense, T alpha) {
  detail::add_decoded(policy, p.dim(), detail::sign_decoded<T>{p.scales(), p.negative(), p.block_size()}, dense, alpha);
}

template <class T>
struct device_payload<sign, T> {
  using type = sign_vector<T>;
};
template <class T>
struct device_payload<scaled_sign, T> {
  using type = sign_vector<T>;
};
template <class T>
struct device_payload<blockwise_sign, T> {
  using type = sign_vector<T>;
};

}  // namespace gradcomp::cuda
