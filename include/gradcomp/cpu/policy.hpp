#pragma once
// exec::par: the parallel CPU back end (oneTBB threads, Highway SIMD inside each chunk).
//
// Include <gradcomp/cpu.hpp> and link gradcomp::tbb to use it. Every result is bit-identical
// to exec::seq: chunk boundaries are fixed by the input size (never by the thread count),
// per-chunk results are merged in chunk order, and sums follow detail/reduce.hpp's order.
#include <cstddef>

#include "../execution.hpp"

namespace gradcomp {

namespace exec {

/// Runs kernels on oneTBB's worker threads, vectorised inside each chunk. Inputs shorter than
/// min_parallel_size run on the calling thread (still vectorised): below it, waking the
/// workers costs more than they save. Compressors without a parallel kernel run on seq.
struct par_t {
  /// Measured on a 2-core AVX-512 VM (docs/performance.md, "Where exec::par starts to
  /// pay"): with chunks of 2^16 elements, the norms, hard-threshold, the sign compressors and
  /// the fused EF steps gain from two threads at 2^17 elements; Top-k breaks even there.
  static constexpr std::size_t default_min_parallel_size = std::size_t{1} << 17;

  std::size_t min_parallel_size = default_min_parallel_size;

  /// The same policy with another size below which work stays on the calling thread
  /// (0 or 1: always use the workers; SIZE_MAX: never).
  constexpr par_t with_min_parallel_size(std::size_t n) const noexcept {
    par_t p = *this;
    p.min_parallel_size = n;
    return p;
  }

  constexpr seq_t fallback() const noexcept { return seq; }
};
inline constexpr par_t par{};

}  // namespace exec

template <>
inline constexpr bool is_execution_policy_v<exec::par_t> = true;

}  // namespace gradcomp
