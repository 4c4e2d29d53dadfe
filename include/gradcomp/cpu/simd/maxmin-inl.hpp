// maxmin_quantizer's kernels, for one target: a bucket's extremes (with a finiteness check)
// and its elements' levels.
//
// Extremes: min and max are exact, so any order of comparisons gives the same values, up to the
// sign of a zero, which detail::positive_zero settles. Levels: element i follows
// detail::maxmin_level with draw i of the counter stream; a lane computes (x - lo) / unit in
// double and the draw with the reference's operations (the helpers of levels-inl.hpp), so the
// levels are the reference's bit for bit. Vectorised only where the level loops are
// (GRADCOMP_SIMD_LEVELS); the extremes wherever Highway vectors are used.
#if defined(GRADCOMP_CPU_SIMD_MAXMIN_INL_) == defined(HWY_TARGET_TOGGLE)
#ifdef GRADCOMP_CPU_SIMD_MAXMIN_INL_
#undef GRADCOMP_CPU_SIMD_MAXMIN_INL_
#else
#define GRADCOMP_CPU_SIMD_MAXMIN_INL_
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "../../detail/maxmin.hpp"
#include "../../detail/random.hpp"
#include "../../detail/strict_fp.hpp"

#if GRADCOMP_SIMD_EMIT
GRADCOMP_SIMD_NAMESPACE_BEGIN

/// The extremes of x[0, n) (n >= 1), zeros as +0, in e; returns false if some x_i is not
/// finite (e is then meaningless).
template <class T>
bool bucket_extremes_of(tag, const T* x, std::size_t n, gradcomp::detail::bucket_extremes<T>& e) {
  constexpr T largest = std::numeric_limits<T>::max();
  T lo = x[0], hi = x[0];
  bool finite = true;
  std::size_t i = 0;
#if GRADCOMP_SIMD_VECTORS
  const hn::ScalableTag<T> d;
  constexpr std::size_t N = hn::MaxLanes(d);
  if (n >= N) {
    auto vlo = hn::LoadU(d, x), vhi = vlo;
    auto ok = hn::Le(hn::Abs(vlo), hn::Set(d, largest));  // NaN and Inf fail
    for (i = N; i + N <= n; i += N) {
      const auto v = hn::LoadU(d, x + i);
      vlo = hn::Min(vlo, v);
      vhi = hn::Max(vhi, v);
      ok = hn::And(ok, hn::Le(hn::Abs(v), hn::Set(d, largest)));
    }
    finite = hn::AllTrue(d, ok);
    lo = hn::GetLane(hn::MinOfLanes(d, vlo));
    hi = hn::GetLane(hn::MaxOfLanes(d, vhi));
  }
#endif
  for (; i < n; ++i) {
    const T v = x[i];
    finite &= std::fabs(v) <= largest;
    if (v < lo) lo = v;
    if (hi < v) hi = v;
  }
  e = {gradcomp::detail::positive_zero(lo), gradcomp::detail::positive_zero(hi)};
  return finite;
}

/// The levels of x[begin, end), all in one bucket with minimum lo and grid unit `unit`, written
/// to out[0, end - begin) (element i follows detail::maxmin_level with draw i).
template <class T>
GRADCOMP_NO_FP_CONTRACT void maxmin_levels(tag, const T* x, std::size_t begin, std::size_t end, T lo, T unit,
                                           const gradcomp::detail::counter_stream& stream, std::uint8_t* out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t i = begin;
#if GRADCOMP_SIMD_LEVELS
  if (unit > T(0)) {  // a constant bucket's levels are all 0: the scalar rule below says so
    const hn::ScalableTag<double> dd;
    const hn::RebindToUnsigned<decltype(dd)> du;
    const hn::Rebind<std::int32_t, decltype(dd)> d32;
    constexpr std::size_t N = hn::MaxLanes(dd);
    const auto vlo = hn::Set(dd, static_cast<double>(lo));
    const auto vunit = hn::Set(dd, static_cast<double>(unit));
    auto state = counter_states(du, stream, begin);
    const auto step = counter_step(du);
    std::int32_t lane[N];
    for (; i + N <= end; i += N, state = hn::Add(state, step)) {
      const auto r = hn::Div(hn::Sub(load_as_double(dd, x + i), vlo), vunit);
      hn::StoreU(hn::DemoteTo(d32, stochastic_round(dd, r, state)), d32, lane);  // exact: levels are 0..255
      for (std::size_t j = 0; j < N; ++j) out[i - begin + j] = static_cast<std::uint8_t>(lane[j]);
    }
  }
#endif
  for (; i < end; ++i)
    out[i - begin] = static_cast<std::uint8_t>(gradcomp::detail::maxmin_level(x[i], lo, unit, stream, i));
}

GRADCOMP_SIMD_NAMESPACE_END
#endif
#endif
