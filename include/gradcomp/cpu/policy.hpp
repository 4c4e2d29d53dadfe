#pragma once
// exec::par: the parallel CPU back end (oneTBB threads, SIMD inside each chunk, the SIMD
// instruction set chosen at run time: cpu/simd.hpp).
//
// Include <gradcomp/cpu.hpp> and link gradcomp::tbb to use it. Every result is bit-identical
// to exec::seq: chunk boundaries are fixed by the input size (never by the thread count),
// per-chunk results are merged in chunk order, and sums follow detail/reduce.hpp's order.
#include <cstddef>

#include "../execution.hpp"
#include "abi.hpp"
#include "tuning.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI {
class workspace;
}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// Runs kernels on oneTBB's worker threads, vectorised inside each chunk. Inputs shorter than
/// min_parallel_size run on the calling thread (still vectorised): below it, waking the
/// workers costs more than they save. Compressors without a parallel kernel run on seq.
struct par_t {
  static constexpr std::size_t default_min_parallel_size = cpu::tuning::parallel::min_parallel_size;

  std::size_t min_parallel_size = default_min_parallel_size;
  /// Where kernels take their scratch memory from; null: cpu::default_workspace().
  cpu::workspace* scratch = nullptr;

  /// The same policy with another size below which work stays on the calling thread
  /// (0 or 1: always use the workers; SIZE_MAX: never).
  constexpr par_t with_min_parallel_size(std::size_t n) const noexcept {
    par_t p = *this;
    p.min_parallel_size = n;
    return p;
  }

  /// The same policy taking its scratch memory from ws (which must outlive the calls).
  constexpr par_t with_workspace(cpu::workspace& ws) const noexcept {
    par_t p = *this;
    p.scratch = &ws;
    return p;
  }

  constexpr seq_t fallback() const noexcept { return seq; }
};
inline constexpr par_t par{};

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI

namespace gradcomp {

template <>
inline constexpr bool is_execution_policy_v<exec::par_t> = true;

}  // namespace gradcomp
