#pragma once
// One error-feedback step on the GPU, without waiting for the host:
//     p = e + scale * g;   m = C(p);   e_new = p - decode(m);   *error = ||e_new||^2
// in the reference's rules and order (gc::error_feedback on exec::seq gives the same bits).
//
// feedback_step_async is the four-kernel composition for any compressor with a CUDA kernel
// (the back end's feedback_input, compress, decompress_add, ordered sum), and one fused pass
// for hard-threshold:
//   1. per 4096-element reduction block: p_i, whether key(p_i) >= key(lambda), the new
//      residual (add_scaled(p_i, -1, p_i) where kept, p_i elsewhere) written to e_new, the
//      kept bits in a block mask and the block's sum of squares in the reference tree
//      (reference_block_sum: the sum reads what it writes). g and e are read once, e_new
//      written once, plus one bit per element;
//   2. an inclusive scan of the per-block kept counts (cub::DeviceScan), the message count;
//   3. per block, the kept entries (index, p_i) in ascending order at the block's offset,
//      p_i recomputed from g and e (feedback_element, the same bits) only where kept;
//   4. the block sums added by the reference tree.
// e_new must not alias e (step 3 reads e again); gc::cuda::error_feedback double-buffers.
#include <cuda_runtime_api.h>

#include <cub/block/block_scan.cuh>
#include <cub/device/device_scan.cuh>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>

#include "../backend.hpp"
#include "../compressors/hard_threshold.hpp"
#include "../detail/bits.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/reduce.hpp"
#include "../error.hpp"
#include "decompress.cuh"
#include "elementwise.cuh"
#include "error.cuh"
#include "hard_threshold.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "policy.cuh"
#include "reduce.cuh"
#include "sparse_vector.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

using gradcomp::detail::reduction_block;

/// The bits of one reduction block's kept mask.
inline constexpr std::size_t mask_words = reduction_block / 32;
static_assert(reduction_block % 32 == 0 && mask_words <= static_cast<std::size_t>(tuning::reduce::block_threads));

/// The fused hard-threshold step's element rule: p_i, kept or not, the new residual.
template <class T, class G>
struct threshold_step {
  const T* e;
  const G* g;
  T scale;
  gradcomp::detail::uint_of<T> bound;
  T* e_new;

  __device__ T input(std::size_t i) const { return gradcomp::detail::feedback_element(e[i], gradient_at<T>(g, i), scale); }
  __device__ bool keeps(T p) const { return gradcomp::detail::magnitude_key(p) >= bound; }
};

/// Step 1: e_new, the block masks and kept counts, and the block sums of squares.
template <class T, class G>
__global__ void __launch_bounds__(tuning::reduce::block_threads)
    threshold_step_kernel(std::size_t n, threshold_step<T, G> step, double* block_sums, unsigned* masks,
                          unsigned long long* block_kept) {
  __shared__ unsigned mask[mask_words];
  __shared__ unsigned kept;
  const std::size_t blocks = (n + reduction_block - 1) / reduction_block;
  for (std::size_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    for (std::size_t w = threadIdx.x; w < mask_words; w += blockDim.x) mask[w] = 0;
    if (threadIdx.x == 0) kept = 0;
    __syncthreads();
    const std::size_t base = b * reduction_block;
    const auto leaf = [&](std::size_t i) {
      const T p = step.input(i);
      const bool keep = step.keeps(p);
      const T r = keep ? gradcomp::detail::add_scaled(p, T(-1), p) : p;  // decompress_add's rule
      step.e_new[i] = r;
      if (keep) atomicOr(&mask[(i - base) / 32], 1u << ((i - base) % 32));
      return gradcomp::detail::square_summand(r);
    };
    const double sum = reference_block_sum(n, b, leaf);  // ends with __syncthreads: the mask is complete
    if (threadIdx.x < mask_words) {
      const unsigned word = mask[threadIdx.x];
      masks[b * mask_words + threadIdx.x] = word;
      if (word != 0) atomicAdd(&kept, static_cast<unsigned>(__popc(word)));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      block_sums[b] = sum;
      block_kept[b] = kept;
    }
  }
}

/// The message count: the last inclusive block end (0 without blocks).
static __global__ void count_from_ends_kernel(const unsigned long long* ends, std::size_t blocks, std::uint64_t* count) {
  *count = blocks == 0 ? 0 : ends[blocks - 1];
}

/// Step 3: block b's kept entries at [ends[b - 1], ends[b]), ascending; one thread per mask word.
template <class T, class G, class Index>
__global__ void __launch_bounds__(mask_words)
    threshold_emit_kernel(std::size_t n, threshold_step<T, G> step, const unsigned* masks,
                          const unsigned long long* ends, Index* indices, T* values) {
  using scan = ::cub::BlockScan<unsigned, static_cast<int>(mask_words)>;
  __shared__ typename scan::TempStorage temp;
  const std::size_t blocks = (n + reduction_block - 1) / reduction_block;
  for (std::size_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    unsigned word = masks[b * mask_words + threadIdx.x];
    unsigned before = 0;
    scan(temp).ExclusiveSum(static_cast<unsigned>(__popc(word)), before);
    std::size_t out = static_cast<std::size_t>(b == 0 ? 0 : ends[b - 1]) + before;
    const std::size_t first = b * reduction_block + threadIdx.x * 32;
    while (word != 0) {
      const int bit = __ffs(static_cast<int>(word)) - 1;
      word &= word - 1;
      const std::size_t i = first + static_cast<std::size_t>(bit);
      indices[out] = static_cast<Index>(i);
      values[out] = step.input(i);
      ++out;
    }
    __syncthreads();  // temp is reused by the next block
  }
}

/// The composition, for any compressor with a CUDA kernel: the reference's four pieces, each
/// on the device (c is not const for seeded compressors, whose step advances).
template <class C, class T, class G, class Out>
void composed_feedback_step_async(const par_t& policy, C& c, std::span<const T> e, std::span<const G> g, T scale,
                                  std::span<T> e_new, Out& out, double* device_error) {
  feedback_input(policy, e, g, scale, e_new);
  backend::run<backend::compress_hook>(policy, c, std::span<const T>(e_new), out);
  backend::run<backend::decompress_add_hook>(policy, std::as_const(out), e_new, T(-1));
  void* sums = policy.workspace().reserve(block_sums_bytes(e_new.size()), policy.stream);
  ordered_sum_async(policy, e_new.size(), square_leaf<T>{e_new.data()}, static_cast<double*>(sums), device_error);
}

template <class C, class T, class G, class Out>
  requires(!std::same_as<std::remove_const_t<C>, hard_threshold>)
void feedback_step_async(const par_t& policy, C& c, std::span<const T> e, std::span<const G> g, T scale,
                         std::span<T> e_new, Out& out, double* device_error) {
  composed_feedback_step_async(policy, c, e, g, scale, e_new, out, device_error);
}

/// Hard-threshold: the fused pass (see the top of this header).
template <class T, class G, class Index>
void feedback_step_async(const par_t& policy, const hard_threshold& c, std::span<const T> e, std::span<const G> g,
                         T scale, std::span<T> e_new, sparse_vector<T, Index>& out, double* device_error) {
  c.validate();
  const std::size_t n = e_new.size();
  gradcomp::detail::check_index_fits<Index>(n, "hard_threshold");
  out.prepare(n, n);
  const std::size_t blocks = (n + reduction_block - 1) / reduction_block;
  const threshold_step<T, G> step{e.data(), g.data(), scale, gradcomp::detail::threshold_key<T>(c.lambda), e_new.data()};

  std::size_t scan_bytes = 0;
  check(::cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, static_cast<const unsigned long long*>(nullptr),
                                        static_cast<unsigned long long*>(nullptr), static_cast<std::int64_t>(blocks),
                                        policy.stream),
        "error_feedback<hard_threshold>", "cub::DeviceScan::InclusiveSum (size query)");
  temp_layout layout;
  const std::size_t sums_slot = layout.add(blocks * sizeof(double));
  const std::size_t masks_slot = layout.add(blocks * mask_words * sizeof(unsigned));
  const std::size_t kept_slot = layout.add(blocks * sizeof(unsigned long long));
  const std::size_t ends_slot = layout.add(blocks * sizeof(unsigned long long));
  const std::size_t scan_slot = layout.add(scan_bytes);
  void* base = policy.workspace().reserve(layout.total(), policy.stream);
  auto* sums = static_cast<double*>(layout.at(base, sums_slot));
  auto* masks = static_cast<unsigned*>(layout.at(base, masks_slot));
  auto* kept = static_cast<unsigned long long*>(layout.at(base, kept_slot));
  auto* ends = static_cast<unsigned long long*>(layout.at(base, ends_slot));

  if (blocks > 0) {
    const unsigned grid = grid_for(blocks, 1, tuning::reduce::max_blocks);
    threshold_step_kernel<<<grid, tuning::reduce::block_threads, 0, policy.stream>>>(n, step, sums, masks, kept);
    check_launch("error_feedback<hard_threshold>", "threshold_step_kernel");
    check(::cub::DeviceScan::InclusiveSum(layout.at(base, scan_slot), scan_bytes, kept, ends,
                                          static_cast<std::int64_t>(blocks), policy.stream),
          "error_feedback<hard_threshold>", "cub::DeviceScan::InclusiveSum");
    threshold_emit_kernel<<<grid, static_cast<unsigned>(mask_words), 0, policy.stream>>>(n, step, masks, ends,
                                                                                        out.indices(), out.values());
    check_launch("error_feedback<hard_threshold>", "threshold_emit_kernel");
  }
  count_from_ends_kernel<<<1, 1, 0, policy.stream>>>(ends, blocks, out.count());
  check_launch("error_feedback<hard_threshold>", "count_from_ends_kernel");
  add_block_sums_async(policy, sums, blocks, device_error);
}

}  // namespace gradcomp::cuda::detail
