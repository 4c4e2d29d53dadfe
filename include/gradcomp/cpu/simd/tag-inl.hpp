// The kernel tag of one target (see kernels-inl.hpp).
#if defined(GRADCOMP_CPU_SIMD_TAG_INL_) == defined(HWY_TARGET_TOGGLE)
#ifdef GRADCOMP_CPU_SIMD_TAG_INL_
#undef GRADCOMP_CPU_SIMD_TAG_INL_
#else
#define GRADCOMP_CPU_SIMD_TAG_INL_
#endif

#include <cstdint>

#if GRADCOMP_SIMD_EMIT
GRADCOMP_SIMD_NAMESPACE_BEGIN

/// Passed to every kernel of this target: dispatch() hands it to the caller, and the
/// caller's unqualified kernel calls then find this target's kernels.
struct tag {
#if GRADCOMP_HAVE_HIGHWAY
  static constexpr std::int64_t target = HWY_TARGET;
#else
  static constexpr std::int64_t target = 1;
#endif
};

#if GRADCOMP_SIMD_VECTORS
namespace hn = hwy::HWY_NAMESPACE;
#endif

GRADCOMP_SIMD_NAMESPACE_END
#endif
#endif
