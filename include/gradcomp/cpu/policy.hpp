#pragma once
// exec::par: the parallel CPU back end (oneTBB threads, SIMD inside each chunk, the SIMD
// instruction set chosen at run time: cpu/simd.hpp).
//
// Include <gradcomp/cpu.hpp> and link gradcomp::tbb to use it. Every result is bit-identical
// to exec::seq: chunk boundaries are fixed by the input size (never by the thread count),
// per-chunk results are merged in chunk order, and sums follow detail/reduce.hpp's order.
#include <cstddef>

#include "../execution.hpp"
#include "tuning.hpp"

// The inline namespace the CPU back end lives in (gradcomp::cpu and exec::par_t), named after
// the instruction set the translation unit is compiled for. A program may build one file with
// -march=native and another without; their copies of the same template (an exec::par kernel,
// or error_feedback<top_k>::compress<par_t>) then differ, and if they shared a symbol the
// linker would keep one, so code with AVX-512 instructions could run on a CPU without them.
// With the instruction set in the namespace, everything of the CPU back end, and every
// function that takes exec::par_t, has a different symbol in the two files. (Names only:
// nothing to configure. One consequence: the two files have different par_t and workspace
// types, so they cannot pass them to each other.)
#ifndef GRADCOMP_CPU_ABI
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
#if defined(__AVX512VBMI2__)
#define GRADCOMP_CPU_ABI abi_avx512_dl
#else
#define GRADCOMP_CPU_ABI abi_avx512
#endif
#elif defined(__AVX2__) && defined(__FMA__)
#define GRADCOMP_CPU_ABI abi_avx2
#elif defined(__SSE4_2__)
#define GRADCOMP_CPU_ABI abi_sse4
#elif defined(__ARM_FEATURE_SVE)
#define GRADCOMP_CPU_ABI abi_sve
#else
#define GRADCOMP_CPU_ABI abi_base
#endif
#endif

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
