#pragma once
// Every tuning constant of the CUDA back end, one struct per algorithm (as CUB's tuning
// policies). None changes a result: the kernels give exec::seq's bits whatever the values.
// They are first guesses for sm_90 (H100/H200), to be set from the GPU benchmarks.
#include <cstddef>

namespace gradcomp::cuda::tuning {

/// Element-wise and gather/scatter kernels: grid-stride loops.
struct elementwise {
  static constexpr int block_threads = 256;
  static constexpr int max_blocks = 8192;
};

/// The reference summation tree (detail/reduce.hpp): one CUDA block per 4096-element
/// reduction block, 32 row groups of 16 rows times 8 lanes; then one block of 1024 threads
/// adds the block sums.
struct reduce {
  static constexpr int block_threads = 256;
  static constexpr int row_groups = 32;
  static constexpr int rows_per_group = 16;
  static constexpr int max_blocks = 16384;
  static constexpr int final_threads = 1024;
};

/// Top-k's radix select on magnitude keys: 8-bit digits, most significant first.
struct radix_select {
  static constexpr int digit_bits = 8;
  static constexpr int block_threads = 256;
  static constexpr int max_blocks = 2048;
  /// Ties at the k-th key are counted per tile of this many elements, then the tile that
  /// holds the last tie kept is searched.
  static constexpr int tie_tile = 4096;
  static constexpr int scan_threads = 1024;
};

/// maxmin_quantizer's bucket extremes: each warp takes a tile of this many consecutive
/// elements (a multiple of 32). A tile inside one bucket costs two atomics (a warp reduction
/// first); a tile that crosses buckets flushes each lane's extremes when its bucket changes.
/// Larger tiles mean fewer atomics on the long buckets' counters, fewer warps in flight.
struct maxmin {
  static constexpr int warp_tile = 1024;
};

/// Whole-model compression (multi_tensor.cuh): tensors per concatenation launch, passed as
/// kernel parameters (24 bytes each; CUDA allows 4 KB of parameters).
struct multi_tensor {
  static constexpr int batch = 64;
};

}  // namespace gradcomp::cuda::tuning
