// The quantizers' level kernels (qsgd and terngrad, grid_rounding, natural dithering), for one
// target.
//
// Element i uses draw i of the (seed, step) counter stream: mix64(key + (i + 1) * gamma) is
// a pure function of i, so a lane computes draw i with the same 64-bit integer operations as
// the scalar reference, and the uniform double (bits >> 11) * 2^-53 is exact in both. Levels
// are computed in double as the reference does and stored as int32; each kernel returns the
// OR of the zigzag codes of the levels it wrote (the payload's bit width comes from it).
// The vector loops need 64-bit multiplies, floor and double -> int32 conversion; only AVX2
// and better have them natively (GRADCOMP_SIMD_LEVELS), elsewhere the scalar rule runs.
#if defined(GRADCOMP_CPU_SIMD_LEVELS_INL_) == defined(HWY_TARGET_TOGGLE)
#ifdef GRADCOMP_CPU_SIMD_LEVELS_INL_
#undef GRADCOMP_CPU_SIMD_LEVELS_INL_
#else
#define GRADCOMP_CPU_SIMD_LEVELS_INL_
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "../../detail/bitpack.hpp"
#include "../../detail/element_rules.hpp"
#include "../../detail/random.hpp"
#include "../../detail/strict_fp.hpp"
#include "../../payload/quantized.hpp"

#if GRADCOMP_SIMD_EMIT
GRADCOMP_SIMD_NAMESPACE_BEGIN

#if GRADCOMP_SIMD_LEVELS
/// x[0, lanes of DD) widened to double (exactly).
template <class DD, class T>
HWY_INLINE hn::Vec<DD> load_as_double(DD dd, const T* x) {
  if constexpr (sizeof(T) == 4)
    return hn::PromoteTo(dd, hn::LoadU(hn::Rebind<float, DD>(), x));
  else
    return hn::LoadU(dd, x);
}

/// The SplitMix64 states of counters first, first + 1, ... (one per lane of DU): the value
/// mix64 is applied to. Add counter_step(du) to move every lane on by a vector's width.
template <class DU>
HWY_INLINE hn::Vec<DU> counter_states(DU du, const gradcomp::detail::counter_stream& stream, std::uint64_t first) {
  constexpr std::size_t lanes = hn::MaxLanes(DU{});
  std::uint64_t start[lanes];
  for (std::size_t j = 0; j < lanes; ++j) start[j] = stream.key() + (first + j + 1) * gradcomp::detail::golden_gamma;
  return hn::LoadU(du, start);
}

template <class DU>
HWY_INLINE hn::Vec<DU> counter_step(DU du) {
  return hn::Set(du, static_cast<std::uint64_t>(hn::MaxLanes(DU{})) * gradcomp::detail::golden_gamma);
}

/// detail::mix64, lane by lane (its constants): counter_stream::bits of the counters whose
/// states are z.
template <class DU>
HWY_INLINE hn::Vec<DU> mix64_of(DU du, hn::Vec<DU> z) {
  z = hn::Mul(hn::Xor(z, hn::ShiftRight<30>(z)), hn::Set(du, 0xbf58476d1ce4e5b9ULL));
  z = hn::Mul(hn::Xor(z, hn::ShiftRight<27>(z)), hn::Set(du, 0x94d049bb133111ebULL));
  return hn::Xor(z, hn::ShiftRight<31>(z));
}

/// counter_stream::uniform for the counters whose states are z, lane by lane.
template <class DD, class DU = hn::RebindToUnsigned<DD>>
HWY_INLINE hn::Vec<DD> uniform_of(DD dd, hn::Vec<DU> z) {
  const DU du;
  const hn::RebindToSigned<DD> di;
  z = mix64_of(du, z);
  // (bits >> 11) < 2^53 converts exactly, and the product by 2^-53 is exact.
  return hn::Mul(hn::ConvertTo(dd, hn::BitCast(di, hn::ShiftRight<11>(z))), hn::Set(dd, 0x1.0p-53));
}

/// detail::stochastic_round, lane by lane, with the draws of the counter states.
template <class DD, class VU>
HWY_INLINE hn::Vec<DD> stochastic_round(DD dd, hn::Vec<DD> r, VU state) {
  const auto floor_r = hn::Floor(r);
  return hn::IfThenElse(hn::Lt(uniform_of(dd, state), hn::Sub(r, floor_r)), hn::Add(floor_r, hn::Set(dd, 1.0)),
                        floor_r);
}

/// Integral doubles (in int32 range) to int32 levels, stored at out; returns their zigzag
/// codes (as detail::zigzag) for the caller's OR.
template <class DD>
HWY_INLINE hn::Vec<hn::Rebind<std::uint32_t, DD>> store_levels(DD, hn::Vec<DD> l, std::int32_t* out) {
  const hn::Rebind<std::int32_t, DD> d32;
  const hn::Rebind<std::uint32_t, DD> du32;
  const auto level = hn::DemoteTo(d32, l);  // exact: l is an integer that fits
  hn::StoreU(level, d32, out);
  return hn::Xor(hn::ShiftLeft<1>(hn::BitCast(du32, level)), hn::BitCast(du32, hn::ShiftRight<31>(level)));
}

/// The OR of the lanes of v.
template <class DU32>
HWY_INLINE std::uint32_t or_of_lanes(DU32 du32, hn::Vec<DU32> v) {
  constexpr std::size_t N = hn::MaxLanes(DU32{});
  std::uint32_t lane[N];
  hn::StoreU(v, du32, lane);
  std::uint32_t result = 0;
  for (std::size_t j = 0; j < N; ++j) result |= lane[j];
  return result;
}
#endif

/// QSGD's levels of x[begin, end) (scale > 0), written to out[0, end - begin); returns the
/// OR of their zigzag codes. Element i follows detail::qsgd_level with draw i.
template <class T>
GRADCOMP_NO_FP_CONTRACT std::uint32_t qsgd_levels(tag, const T* x, std::size_t begin, std::size_t end, T scale,
                                                  const gradcomp::detail::counter_stream& stream, std::int32_t* out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const double s = static_cast<double>(scale);
  std::uint32_t coded_or = 0;
  std::size_t i = begin;
#if GRADCOMP_SIMD_LEVELS
  const hn::ScalableTag<double> dd;
  const hn::RebindToUnsigned<decltype(dd)> du;
  const hn::Rebind<std::uint32_t, decltype(dd)> du32;
  constexpr std::size_t N = hn::MaxLanes(dd);
  const auto vs = hn::Set(dd, s);
  const auto zero = hn::Zero(dd);
  auto state = counter_states(du, stream, begin);
  const auto step = counter_step(du);
  auto codes = hn::Zero(du32);
  for (; i + N <= end; i += N, state = hn::Add(state, step)) {
    const auto v = load_as_double(dd, x + i);
    const auto l = stochastic_round(dd, hn::Div(hn::Abs(v), vs), state);
    codes = hn::Or(codes, store_levels(dd, hn::IfThenElse(hn::Lt(v, zero), hn::Neg(l), l), out + (i - begin)));
  }
  coded_or = or_of_lanes(du32, codes);
#endif
  for (; i < end; ++i) {
    const std::int32_t level = gradcomp::detail::qsgd_level(x[i], s, stream, i);
    out[i - begin] = level;
    coded_or |= gradcomp::detail::zigzag(level);
  }
  return coded_or;
}

/// Natural dithering's levels of x[begin, end) (scale > 0), written to out[0, end - begin);
/// returns the OR of their power-of-two codes (detail::level_code). Element i follows
/// detail::natural_level with draw i: r = |x_i| / scale; below 1, level 1 with probability r;
/// from 1 up, low = 2^floor(log2 r) (r with its mantissa field cleared: r >= 1 is normal) or
/// 2 low, the upper with probability r / low - 1 (exact), as frexp gives it in the rule.
template <class T>
GRADCOMP_NO_FP_CONTRACT std::uint32_t natural_levels(tag, const T* x, std::size_t begin, std::size_t end, T scale,
                                                     const gradcomp::detail::counter_stream& stream, std::int32_t* out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const double s = static_cast<double>(scale);
  std::uint32_t coded_or = 0;
  std::size_t i = begin;
#if GRADCOMP_SIMD_LEVELS
  const hn::ScalableTag<double> dd;
  const hn::RebindToUnsigned<decltype(dd)> du;
  const hn::Rebind<std::int32_t, decltype(dd)> d32;
  constexpr std::size_t N = hn::MaxLanes(dd);
  const auto vs = hn::Set(dd, s);
  const auto zero = hn::Zero(dd);
  const auto one = hn::Set(dd, 1.0);
  const auto exponent_field = hn::Set(du, 0x7ff0000000000000ULL);
  const auto bias_less_one = hn::Set(du, 1022);  // exponent field of 2^j is j + 1023
  const auto one_u = hn::Set(du, 1);
  auto state = counter_states(du, stream, begin);
  const auto step = counter_step(du);
  auto codes = hn::Zero(du);
  for (; i + N <= end; i += N, state = hn::Add(state, step)) {
    const auto v = load_as_double(dd, x + i);
    const auto r = hn::Div(hn::Abs(v), vs);
    const auto u = uniform_of(dd, state);
    const auto below_one = hn::IfThenElse(hn::Lt(u, r), one, zero);
    const auto low = hn::BitCast(dd, hn::And(hn::BitCast(du, r), exponent_field));
    const auto from_one = hn::IfThenElse(hn::Lt(u, hn::Sub(hn::Div(r, low), one)), hn::Add(low, low), low);
    const auto l = hn::IfThenElse(hn::Lt(r, one), below_one, from_one);
    const auto negative = hn::Lt(v, zero);
    hn::StoreU(hn::DemoteTo(d32, hn::IfThenElse(negative, hn::Neg(l), l)), d32, out + (i - begin));
    // The code of +-2^j is zigzag(+-(j + 1)) = 2 (j + 1), less 1 when negative; that of 0 is 0.
    const auto nonzero = hn::RebindMask(du, hn::Ne(l, zero));
    const auto j_plus_one = hn::IfThenElseZero(nonzero, hn::Sub(hn::ShiftRight<52>(hn::BitCast(du, l)), bias_less_one));
    const auto minus = hn::IfThenElseZero(hn::RebindMask(du, negative), hn::IfThenElseZero(nonzero, one_u));
    codes = hn::Or(codes, hn::Sub(hn::ShiftLeft<1>(j_plus_one), minus));
  }
  std::uint64_t lane[N];
  hn::StoreU(codes, du, lane);
  for (std::size_t j = 0; j < N; ++j) coded_or |= static_cast<std::uint32_t>(lane[j]);
#endif
  for (; i < end; ++i) {
    const std::int32_t level = gradcomp::detail::natural_level(x[i], s, stream, i);
    out[i - begin] = level;
    coded_or |= gradcomp::detail::level_code(level, gradcomp::level_coding::power_of_two);
  }
  return coded_or;
}

/// grid_rounding's levels of x[begin, end), written to out[0, end - begin); returns the OR
/// of their zigzag codes. Element i follows detail::grid_level (draw i when stochastic).
template <class T>
GRADCOMP_NO_FP_CONTRACT std::uint32_t grid_levels(tag, const T* x, std::size_t begin, std::size_t end, T q,
                                                  bool stochastic, const gradcomp::detail::counter_stream& stream,
                                                  std::int32_t* out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const double dq = static_cast<double>(q);
  std::uint32_t coded_or = 0;
  std::size_t i = begin;
#if GRADCOMP_SIMD_LEVELS
  const hn::ScalableTag<double> dd;
  const hn::RebindToUnsigned<decltype(dd)> du;
  const hn::Rebind<std::uint32_t, decltype(dd)> du32;
  constexpr std::size_t N = hn::MaxLanes(dd);
  const auto vq = hn::Set(dd, dq);
  const auto one = hn::Set(dd, 1.0);
  const auto half = hn::Set(dd, 0.5);
  auto codes = hn::Zero(du32);
  if (stochastic) {
    auto state = counter_states(du, stream, begin);
    const auto step = counter_step(du);
    for (; i + N <= end; i += N, state = hn::Add(state, step)) {
      const auto l = stochastic_round(dd, hn::Div(load_as_double(dd, x + i), vq), state);
      codes = hn::Or(codes, store_levels(dd, l, out + (i - begin)));
    }
  } else {
    for (; i + N <= end; i += N) {
      // std::round: truncate, then step away from zero when the dropped part (exact) is >= 1/2.
      const auto r = hn::Div(load_as_double(dd, x + i), vq);
      const auto t = hn::Trunc(r);
      const auto l = hn::IfThenElse(hn::Ge(hn::Abs(hn::Sub(r, t)), half), hn::Add(t, hn::CopySign(one, r)), t);
      codes = hn::Or(codes, store_levels(dd, l, out + (i - begin)));
    }
  }
  coded_or = or_of_lanes(du32, codes);
#endif
  for (; i < end; ++i) {
    const std::int32_t level = gradcomp::detail::grid_level(x[i], dq, stochastic, stream, i);
    out[i - begin] = level;
    coded_or |= gradcomp::detail::zigzag(level);
  }
  return coded_or;
}

/// True when every x_i in x[0, n) passes grid_rounding's checks: finite, and
/// |x_i| / q < limit. One compare decides both (NaN and Inf fail it).
template <class T>
bool fits_grid(tag, const T* x, std::size_t n, T q, double limit) {
  const double dq = static_cast<double>(q);
  std::size_t i = 0;
  bool ok = true;
#if GRADCOMP_SIMD_LEVELS
  const hn::ScalableTag<double> dd;
  constexpr std::size_t N = hn::MaxLanes(dd);
  const auto vq = hn::Set(dd, dq);
  const auto vlimit = hn::Set(dd, limit);
  auto fits = hn::Eq(vq, vq);  // all true
  for (; i + N <= n; i += N) fits = hn::And(fits, hn::Lt(hn::Div(hn::Abs(load_as_double(dd, x + i)), vq), vlimit));
  ok = hn::AllTrue(dd, fits);
#endif
  for (; i < n; ++i) ok &= std::fabs(static_cast<double>(x[i])) / dq < limit;
  return ok;
}

/// Random-k's search pass over the indices [begin, end): how many have a hash
/// (detail::random_k_hash, draw i of the stream) at or below t. The first `room` of their
/// indices are written to out, in order (room 0: out is not touched). Lane j of a vector
/// hashes index i + j with the reference's integer operations.
inline std::size_t indices_with_hash_at_most(tag, const gradcomp::detail::counter_stream& stream, std::size_t begin,
                                             std::size_t end, std::uint64_t t, std::uint64_t* out, std::size_t room) {
  std::size_t count = 0;
  std::size_t i = begin;
#if GRADCOMP_SIMD_LEVELS
  const hn::ScalableTag<std::uint64_t> du;
  constexpr std::size_t N = hn::MaxLanes(du);
  auto state = counter_states(du, stream, begin);
  const auto step = counter_step(du);
  const auto bound = hn::Set(du, t);
  auto index = hn::Iota(du, static_cast<std::uint64_t>(begin));
  const auto lanes = hn::Set(du, static_cast<std::uint64_t>(N));
  for (; i + N <= end; i += N, state = hn::Add(state, step), index = hn::Add(index, lanes)) {
    // (Highway 1.0.3 compares 64-bit unsigned lanes with Lt and Gt only.)
    const auto kept = hn::Not(hn::Lt(bound, mix64_of(du, state)));
    if (hn::AllFalse(du, kept)) continue;  // the common case: about k/d of the lanes are kept
    const std::size_t n = hn::CountTrue(du, kept);
    if (count + n <= room) {
      hn::CompressBlendedStore(index, kept, du, out + count);
    } else {  // the ones that still fit, lane by lane
      std::size_t at = count;
      for (std::size_t j = i; j < i + N && at < room; ++j)
        if (gradcomp::detail::random_k_hash(stream, j) <= t) out[at++] = j;
    }
    count += n;
  }
#endif
  for (; i < end; ++i) {
    if (gradcomp::detail::random_k_hash(stream, i) > t) continue;
    if (count < room) out[count] = i;
    ++count;
  }
  return count;
}

GRADCOMP_SIMD_NAMESPACE_END
#endif
#endif
