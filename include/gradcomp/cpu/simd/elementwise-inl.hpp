// Element-wise kernels, for one target: the error-feedback input, the dense decoders of
// decompress_add, and sign-bit packing. Each element follows the reference's rule
// (detail/element_rules.hpp): the vector loop does the same operations in the same order,
// and the tail calls the rule itself.
#if defined(GRADCOMP_CPU_SIMD_ELEMENTWISE_INL_) == defined(HWY_TARGET_TOGGLE)
#ifdef GRADCOMP_CPU_SIMD_ELEMENTWISE_INL_
#undef GRADCOMP_CPU_SIMD_ELEMENTWISE_INL_
#else
#define GRADCOMP_CPU_SIMD_ELEMENTWISE_INL_
#endif

#include <cstddef>
#include <cstdint>

#include "../../detail/element_rules.hpp"
#include "../../detail/strict_fp.hpp"

#if GRADCOMP_SIMD_EMIT
GRADCOMP_SIMD_NAMESPACE_BEGIN

/// p[0, n) = e + scale * g (detail::feedback_element).
template <class T>
GRADCOMP_NO_FP_CONTRACT void feedback_input(tag, const T* e, const T* g, T scale, T* p, std::size_t n) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t i = 0;
#if GRADCOMP_SIMD_VECTORS
  const hn::ScalableTag<T> d;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto vscale = hn::Set(d, scale);
  if (scale == T(1)) {
    for (; i + L <= n; i += L) hn::StoreU(hn::Add(hn::LoadU(d, e + i), hn::LoadU(d, g + i)), d, p + i);
  } else {
    for (; i + L <= n; i += L) hn::StoreU(hn::Add(hn::LoadU(d, e + i), hn::Mul(vscale, hn::LoadU(d, g + i))), d, p + i);
  }
#endif
  for (; i < n; ++i) p[i] = gradcomp::detail::feedback_element(e[i], g[i], scale);
}

/// dense[i] += alpha * values[i] for i < n (detail::add_scaled).
template <class T>
GRADCOMP_NO_FP_CONTRACT void dense_add(tag, const T* values, std::size_t n, T* dense, T alpha) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t i = 0;
#if GRADCOMP_SIMD_VECTORS
  const hn::ScalableTag<T> d;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto va = hn::Set(d, alpha);
  for (; i + L <= n; i += L)
    hn::StoreU(hn::Add(hn::LoadU(d, dense + i), hn::Mul(va, hn::LoadU(d, values + i))), d, dense + i);
#endif
  for (; i < n; ++i) dense[i] = gradcomp::detail::add_scaled(dense[i], alpha, values[i]);
}

/// dense[i] += alpha * (scale * T(levels[i])) for i < n: the quantized payload's decoding.
template <class T>
GRADCOMP_NO_FP_CONTRACT void levels_add(tag, const std::int32_t* levels, std::size_t n, T scale, T* dense, T alpha) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t i = 0;
#if GRADCOMP_SIMD_VECTORS
  const hn::ScalableTag<T> d;
  const hn::Rebind<std::int32_t, decltype(d)> d32;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto va = hn::Set(d, alpha);
  const auto vs = hn::Set(d, scale);
  for (; i + L <= n; i += L) {
    hn::Vec<decltype(d)> level;  // exact conversions, as static_cast<T>
    if constexpr (sizeof(T) == 4)
      level = hn::ConvertTo(d, hn::LoadU(d32, levels + i));
    else
      level = hn::PromoteTo(d, hn::LoadU(d32, levels + i));
    hn::StoreU(hn::Add(hn::LoadU(d, dense + i), hn::Mul(va, hn::Mul(vs, level))), d, dense + i);
  }
#endif
  for (; i < n; ++i) dense[i] = gradcomp::detail::add_scaled(dense[i], alpha, scale * static_cast<T>(levels[i]));
}

/// dense[i] += alpha * (negative bit i ? -scale : scale) for i in [begin, end), all in one
/// block of the sign payload (one scale); `words` are the payload's sign words.
template <class T>
GRADCOMP_NO_FP_CONTRACT void signs_add(tag, const std::uint64_t* words, std::size_t begin, std::size_t end, T scale,
                                       T* dense, T alpha) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t i = begin;
#if GRADCOMP_SIMD_VECTORS
  const hn::ScalableTag<T> d;
  constexpr std::size_t L = hn::MaxLanes(d);
  static_assert(L <= 64);
  const auto va = hn::Set(d, alpha);
  const auto positive = hn::Set(d, scale);
  const auto negative = hn::Neg(positive);
  for (; i + L <= end; i += L) {
    // The L sign bits from element i on, which may straddle two words.
    const std::size_t o = i % 64;
    std::uint64_t bits = words[i / 64] >> o;
    if (o + L > 64) bits |= words[i / 64 + 1] << (64 - o);
    std::uint8_t bytes[8];
    for (std::size_t j = 0; j < 8; ++j) bytes[j] = static_cast<std::uint8_t>(bits >> (8 * j));
    const auto value = hn::IfThenElse(hn::LoadMaskBits(d, bytes), negative, positive);
    hn::StoreU(hn::Add(hn::LoadU(d, dense + i), hn::Mul(va, value)), d, dense + i);
  }
#endif
  for (; i < end; ++i) {
    const bool is_negative = (words[i / 64] >> (i % 64)) & 1u;
    dense[i] = gradcomp::detail::add_scaled(dense[i], alpha, gradcomp::detail::signed_scale(scale, is_negative));
  }
}

/// words[0, ceil(n / 64)) = the sign bits of x[0, n): bit j of word w set iff x[64w + j] < 0
/// (an ordered compare, so -0 and NaN give 0, as in the reference).
template <class T>
void pack_negative(tag, const T* x, std::size_t n, std::uint64_t* words) {
  std::size_t i = 0;
#if GRADCOMP_SIMD_VECTORS
  const hn::ScalableTag<T> d;
  constexpr std::size_t L = hn::MaxLanes(d);
  static_assert(64 % L == 0, "a vector's lanes must tile a 64-bit word");
  const auto zero = hn::Zero(d);
  for (; i + 64 <= n; i += 64) {
    std::uint64_t word = 0;
    for (std::size_t v = 0; v < 64; v += L) {
      std::uint8_t bytes[8] = {};
      hn::StoreMaskBits(d, hn::Lt(hn::LoadU(d, x + i + v), zero), bytes);
      std::uint64_t lanes = 0;  // lane j at bit j, whatever the host's byte order
      for (std::size_t b = 0; b < (L + 7) / 8; ++b) lanes |= std::uint64_t{bytes[b]} << (8 * b);
      word |= lanes << v;
    }
    words[i / 64] = word;
  }
#endif
  for (; i < n; i += 64) {
    const std::size_t m = n - i < 64 ? n - i : 64;
    std::uint64_t word = 0;
    for (std::size_t j = 0; j < m; ++j) word |= std::uint64_t{gradcomp::detail::sign_bit_of(x[i + j])} << j;
    words[i / 64] = word;
  }
}

GRADCOMP_SIMD_NAMESPACE_END
#endif
#endif
