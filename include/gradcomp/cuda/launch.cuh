#pragma once
// Grid sizes for the CUDA back end's grid-stride kernels.
#include <cstddef>

#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// Blocks for n items at `threads` per block, at least one, at most max_blocks (the kernels
/// loop over the rest).
constexpr unsigned grid_for(std::size_t n, int threads, int max_blocks) noexcept {
  const std::size_t blocks = (n + static_cast<std::size_t>(threads) - 1) / static_cast<std::size_t>(threads);
  return static_cast<unsigned>(blocks == 0 ? 1 : (blocks > static_cast<std::size_t>(max_blocks) ? max_blocks : blocks));
}

/// Blocks of an element-wise kernel over n items (tuning::elementwise).
constexpr unsigned elementwise_grid(std::size_t n) noexcept {
  return grid_for(n, tuning::elementwise::block_threads, tuning::elementwise::max_blocks);
}

/// The calling thread's index in a 1-D grid and the grid's thread count.
__device__ inline std::size_t global_thread() { return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline std::size_t grid_threads() { return static_cast<std::size_t>(gridDim.x) * blockDim.x; }

}  // namespace gradcomp::cuda::detail
