// Every SIMD kernel of exec::par, compiled once per target. Highway's foreach_target
// re-includes this file with HWY_TARGET set to each target cpu/simd.hpp compiles, and once
// more for the baseline; each pass defines the kernels in namespace
// gradcomp::cpu::<ABI>::simd::N_<TARGET> (HWY_NAMESPACE), with that target's flags. A kernel
// takes the target's `tag` as its first argument, so dispatch() can reach it by
// argument-dependent lookup. No include guard: see the per-file guards below.
//
// Per pass:
//   GRADCOMP_SIMD_EMIT     this target is one gradcomp compiles (else the pass is empty);
//   GRADCOMP_SIMD_VECTORS  Highway vector ops are used (else the portable scalar loops);
//   GRADCOMP_SIMD_LEVELS   the quantizers' level loops are vectorised (AVX2 and better:
//                          before AVX2 Highway emulates 64-bit multiplies and the vector code
//                          ran slower than the scalar loop, qsgd 2x).
#undef GRADCOMP_SIMD_EMIT
#undef GRADCOMP_SIMD_VECTORS
#undef GRADCOMP_SIMD_LEVELS
#undef GRADCOMP_SIMD_NAMESPACE_BEGIN
#undef GRADCOMP_SIMD_NAMESPACE_END

#if GRADCOMP_HAVE_HIGHWAY
#include <hwy/highway.h>
#define GRADCOMP_SIMD_EMIT ((GRADCOMP_SIMD_COMPILED & HWY_TARGET) != 0)
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128 || HWY_HAVE_SCALABLE
#define GRADCOMP_SIMD_VECTORS 0
#else
#define GRADCOMP_SIMD_VECTORS 1
#endif
#if GRADCOMP_SIMD_VECTORS && HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#define GRADCOMP_SIMD_LEVELS 1
#else
#define GRADCOMP_SIMD_LEVELS 0
#endif
#define GRADCOMP_SIMD_NAMESPACE_BEGIN \
  HWY_BEFORE_NAMESPACE();             \
  namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::simd::HWY_NAMESPACE {
#define GRADCOMP_SIMD_NAMESPACE_END \
  }                                 \
  HWY_AFTER_NAMESPACE();
#else
#define GRADCOMP_SIMD_EMIT 1
#define GRADCOMP_SIMD_VECTORS 0
#define GRADCOMP_SIMD_LEVELS 0
#define GRADCOMP_SIMD_NAMESPACE_BEGIN namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::simd::scalar_only {
#define GRADCOMP_SIMD_NAMESPACE_END }
#endif

#include "tag-inl.hpp"
#include "reduce-inl.hpp"
#include "compact-inl.hpp"
#include "select-inl.hpp"
#include "elementwise-inl.hpp"
#include "levels-inl.hpp"
#include "maxmin-inl.hpp"
