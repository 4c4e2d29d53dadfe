#pragma once
// Every tuning constant of the CUDA back end, one struct per algorithm (as CUB's tuning
// policies). None changes a result: the kernels give exec::seq's bits whatever the values
// (except PowerSGD's orthogonalisation block, which matches exec::seq within a tolerance; see
// struct powersgd).
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

/// PowerSGD (powersgd.cuh): the skinny products with r = 1..32 columns of P and Q, and the
/// per-tensor orthogonalisation. A thread keeps one double accumulator per column of a group
/// of at most group_columns columns (registers: 2 per column); a larger r takes several passes
/// over M, one per group. Each launch covers every tensor of the model (a binary search over
/// the tensor table maps a work item to its tensor). Unlike the constants above, one of these
/// is part of the result: tensor_block_threads fixes how the orthogonalisation splits its dot
/// products, so changing it changes P's last bits (within the tolerance docs/powersgd.md
/// states; every run with the same value gives the same bits). The others change no bit.
struct powersgd {
  static constexpr int group_columns = 32;
  /// P = M Q: one warp per row of M (8 rows per block of 256 threads).
  static constexpr int row_block_threads = 256;
  static constexpr int row_max_blocks = 8192;
  /// Q = M^T P: one thread per column of M; decoded = P Q^T: one thread per element.
  static constexpr int column_block_threads = 256;
  static constexpr int column_max_blocks = 8192;
  /// Orthogonalisation and the redraw of zero columns of Q: one block per tensor (a power of
  /// two: the block's sums are a shared-memory tree over this many partial sums).
  static constexpr int tensor_block_threads = 256;
  static constexpr int tensor_max_blocks = 4096;
};

}  // namespace gradcomp::cuda::tuning
