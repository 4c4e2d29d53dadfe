#pragma once
// Ordered sums on the GPU: the reference tree of detail/reduce.hpp, bit for bit.
// (Kernels that are not templates are static: each translation unit of a header-only
// library keeps its own, as CUB does, instead of clashing at link time.)
//
// Blocks of 4096 elements, 512 rows x 8 lanes; each lane summed over the rows by a pairwise
// tree; lanes folded ((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7)); block sums added by a pairwise tree.
// One CUDA block per reduction block: thread t takes lane t % 8 and the aligned run of 16 rows
// 16 (t / 8) .. 16 (t / 8) + 15, a subtree of the row tree, which it sums with
// detail::pairwise_accumulator (the same code the CPU tests check against pairwise_tree);
// lane l's 32 run sums are added by the upper levels of the same tree, then folded. A second
// kernel of 1024 threads adds the block sums: each thread an aligned run of blocks, then the
// last ten levels in shared memory. Leaves past the end are pushed as zero: every summand is
// >= 0 or NaN, so x + 0 = x and the zero-padded tree equals the reference's shorter one.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../detail/reduce.hpp"
#include "error.cuh"
#include "launch.cuh"
#include "policy.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

using gradcomp::detail::pairwise_accumulator;
using gradcomp::detail::reduction_block;
using gradcomp::detail::reduction_lanes;

/// The reference sum of leaf(i) over reduction block b of [0, n), computed by the calling CUDA
/// block (every thread calls it; the result is valid in thread 0). leaf(i) is a double >= 0
/// or NaN, evaluated once per element; it may also write element i (a fused kernel: the
/// error-feedback step writes the residual it sums).
template <class Leaf>
__device__ double reference_block_sum(std::size_t n, std::size_t b, const Leaf& leaf) {
  constexpr int lanes = static_cast<int>(reduction_lanes);
  constexpr int groups = tuning::reduce::row_groups;
  constexpr int rows = tuning::reduce::rows_per_group;
  static_assert(groups * rows * lanes == static_cast<int>(reduction_block) && groups * lanes == tuning::reduce::block_threads);
  __shared__ double run_sum[groups][lanes];
  __shared__ double lane_sum[lanes];
  const int lane = static_cast<int>(threadIdx.x) % lanes;
  const int group = static_cast<int>(threadIdx.x) / lanes;
  const std::size_t base = b * reduction_block;
  // Rows group * 16 .. group * 16 + 15 of this lane: element base + row * 8 + lane.
  const auto element = [&](std::size_t row) { return leaf(base + row * lanes + lane); };
  constexpr std::size_t block = reduction_block;
  const std::size_t here = n - base < block ? n - base : block;  // elements in this block
  const std::size_t rows_here = (here + lanes - 1 - lane) / lanes;   // rows with an element in this lane
  run_sum[group][lane] =
      gradcomp::detail::aligned_run_sum<4>(element, static_cast<std::size_t>(group * rows), rows, rows_here);
  __syncthreads();
  if (threadIdx.x < lanes) {
    pairwise_accumulator<5> runs_acc;  // 32 runs of 16 rows: the upper levels of the row tree
    for (int g = 0; g < groups; ++g) runs_acc.push(run_sum[g][threadIdx.x]);
    lane_sum[threadIdx.x] = runs_acc.result();
  }
  __syncthreads();
  const double sum = threadIdx.x == 0 ? gradcomp::detail::fold_lanes(lane_sum) : 0.0;
  __syncthreads();
  return sum;
}

/// block_sums[b] = the reference sum of leaf(i) over reduction block b, for every block of
/// [0, n) (reference_block_sum). A leaf with active() (read on the device) that is false
/// makes the kernel write nothing; its sum is then not to be read.
template <class Leaf>
__global__ void __launch_bounds__(tuning::reduce::block_threads)
    block_sums_kernel(std::size_t n, Leaf leaf, double* block_sums) {
  if constexpr (requires { leaf.active(); })  // a sum wanted only when an earlier kernel says so
    if (!leaf.active()) return;
  const std::size_t blocks = (n + reduction_block - 1) / reduction_block;
  for (std::size_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    const double sum = reference_block_sum(n, b, leaf);
    if (threadIdx.x == 0) block_sums[b] = sum;
  }
}

/// *out = the pairwise tree over leaves[0, n) (zero-padded to a power of two), n >= 0.
static __global__ void __launch_bounds__(tuning::reduce::final_threads)
    tree_sum_kernel(const double* leaves, std::size_t n, double* out) {
  constexpr int threads = tuning::reduce::final_threads;
  __shared__ double level[threads];
  const std::size_t padded = n <= 1 ? 1 : std::bit_ceil(n);
  const std::size_t per = padded > threads ? padded / threads : 1;  // leaves per thread, a power of two
  const std::size_t used = padded / per;                              // threads with a run, a power of two
  const std::size_t t = threadIdx.x;
  if (t < used) {
    const auto leaf = [leaves](std::size_t i) { return leaves[i]; };
    level[t] = gradcomp::detail::aligned_run_sum<54>(leaf, t * per, per, n);
  }
  __syncthreads();
  for (std::size_t width = used / 2; width >= 1; width /= 2) {
    double v = 0.0;
    if (t < width) v = level[2 * t] + level[2 * t + 1];  // left + right, as pairwise_tree adds
    __syncthreads();
    if (t < width) level[t] = v;
    __syncthreads();
  }
  if (t == 0) *out = n == 0 ? 0.0 : level[0];
}

/// *device_out = the reference tree over the sums of `blocks` reduction blocks.
inline void add_block_sums_async(const par_t& policy, const double* block_sums, std::size_t blocks, double* device_out) {
  tree_sum_kernel<<<1, tuning::reduce::final_threads, 0, policy.stream>>>(block_sums, blocks, device_out);
  check_launch("ordered_sum", "tree_sum_kernel");
}

/// The reference sum of leaf(i) over [0, n) into *device_out, on the policy's stream, without
/// waiting for it. block_sums: room for one double per 4096 elements.
template <class Leaf>
void ordered_sum_async(const par_t& policy, std::size_t n, Leaf leaf, double* block_sums, double* device_out) {
  const std::size_t blocks = (n + reduction_block - 1) / reduction_block;
  if (blocks > 0) {
    block_sums_kernel<<<grid_for(blocks, 1, tuning::reduce::max_blocks), tuning::reduce::block_threads, 0,
                        policy.stream>>>(n, leaf, block_sums);
    check_launch("ordered_sum", "block_sums_kernel");
  }
  add_block_sums_async(policy, block_sums, blocks, device_out);
}

/// Bytes of the block sums of an ordered sum over n elements.
constexpr std::size_t block_sums_bytes(std::size_t n) noexcept {
  return ((n + reduction_block - 1) / reduction_block) * sizeof(double);
}

/// The reference squared-norm leaf of element i of x.
template <class T>
struct square_leaf {
  const T* x;
  __device__ double operator()(std::size_t i) const { return gradcomp::detail::square_summand(x[i]); }
};

/// For the rescues of mean_abs and l2_norm (detail/reduce.hpp): the largest finite nonzero
/// |x_i| into *target(i), as the bits of a double (atomicMax: positive doubles order as their
/// bits; 0 means none). target(i) == nullptr skips i without reading it.
template <class T, class Target>
__global__ void largest_finite_kernel(const T* x, std::size_t n, Target target) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) {
    if (unsigned long long* t = target(i)) {
      const double a = std::fabs(static_cast<double>(x[i]));
      if (std::isfinite(a) && a > 0.0) atomicMax(t, std::bit_cast<unsigned long long>(a));
    }
  }
}

/// The rescue's shift for a largest |x_i| given as bits (nonzero): max_exponent's e.
__device__ inline int rescue_shift(unsigned long long largest) {
  return gradcomp::detail::exponent_of(std::bit_cast<double>(largest));
}

/// Reads a device double back (synchronises the stream).
inline double read_back(const par_t& policy, const double* device_value, const char* where) {
  double v = 0.0;
  check(cudaMemcpyAsync(&v, device_value, sizeof v, cudaMemcpyDeviceToHost, policy.stream), where, "cudaMemcpyAsync");
  check(cudaStreamSynchronize(policy.stream), where, "cudaStreamSynchronize");
  return v;
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// ||x||^2 in the reference order (x in device memory). Synchronises: the result is a host
/// double.
template <std::floating_point T>
double squared_norm_with(const par_t& policy, std::span<const T> x) {
  detail::temp_layout layout;
  const std::size_t sums = layout.add(detail::block_sums_bytes(x.size()));
  const std::size_t result = layout.add(sizeof(double));
  void* base = policy.workspace().reserve(layout.total(), policy.stream);
  auto* device_result = static_cast<double*>(layout.at(base, result));
  detail::ordered_sum_async(policy, x.size(), detail::square_leaf<T>{x.data()}, static_cast<double*>(layout.at(base, sums)),
                            device_result);
  return detail::read_back(policy, device_result, "squared_norm");
}

}  // namespace gradcomp::cuda
