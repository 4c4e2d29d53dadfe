#pragma once
// Which SIMD instruction set the exec::par kernels use.
//
// Highway is used header-only with static dispatch (HWY_COMPILE_ONLY_STATIC), so gradcomp
// stays header-only and the instruction set follows the compiler flags of the translation
// unit: -march=native (AVX-512 where the CPU has it), -march=x86-64-v3 (AVX2), or the plain
// x86-64 baseline. On the baseline Highway only offers its one-lane emulation, which is
// slower than what the compiler makes of a plain loop, so there (and without Highway, or
// with GRADCOMP_NO_HIGHWAY defined) the kernels use portable scalar loops instead.
// GRADCOMP_CPU_SIMD is 1 when the Highway kernels are compiled in.
#if !defined(GRADCOMP_NO_HIGHWAY) && __has_include(<hwy/highway.h>)
#ifndef HWY_COMPILE_ONLY_STATIC
#define HWY_COMPILE_ONLY_STATIC 1
#endif
#include <hwy/highway.h>
#if HWY_STATIC_TARGET != HWY_SCALAR && HWY_STATIC_TARGET != HWY_EMU128
#define GRADCOMP_CPU_SIMD 1
#endif
#endif
#ifndef GRADCOMP_CPU_SIMD
#define GRADCOMP_CPU_SIMD 0
#endif

namespace gradcomp::cpu {

/// The instruction set the exec::par kernels were compiled for in this translation unit:
/// a Highway target name ("AVX3_DL", "AVX2", ...) or "scalar".
inline const char* simd_target() noexcept {
#if GRADCOMP_CPU_SIMD
  return hwy::TargetName(HWY_STATIC_TARGET);
#else
  return "scalar";
#endif
}

}  // namespace gradcomp::cpu

#if GRADCOMP_CPU_SIMD
namespace gradcomp::cpu::simd {
namespace hn = hwy::HWY_NAMESPACE;
}  // namespace gradcomp::cpu::simd
#endif
