#pragma once
// grid_rounding on exec::par: a parallel check that every |x_i| / q is finite and in the
// int32 level range, then every element's level in parallel (stochastic rounding with the
// reference's counter-stream draws).
#include <atomic>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/grid_rounding.hpp"
#include "../detail/bitpack.hpp"
#include "../detail/random.hpp"
#include "../detail/strict_fp.hpp"
#include "../payload/quantized.hpp"
#include "counter_draws.hpp"
#include "levels.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

/// True when every x_i in x[0, n) passes the reference's checks: finite, and
/// |x_i| / q < max_level. One compare decides both (NaN and Inf fail it).
template <class T>
bool fits_grid(const T* x, std::size_t n, T q) {
  const double dq = static_cast<double>(q);
  constexpr double limit = grid_rounding::max_level;
  std::size_t i = 0;
  bool ok = true;
#if GRADCOMP_CPU_SIMD_LEVELS
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

/// grid_rounding's levels of x[begin, end), written to out[0, end - begin); returns the OR
/// of their zigzag codes. Nearest rounding is std::round (half away from zero); stochastic
/// rounding uses draw i of the stream for element i, as the reference does.
template <class T>
GRADCOMP_NO_FP_CONTRACT std::uint32_t grid_levels(const T* x, std::size_t begin, std::size_t end, T q, bool stochastic,
                                                  const gradcomp::detail::counter_stream& stream, std::int32_t* out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const double dq = static_cast<double>(q);
  std::uint32_t coded_or = 0;
  std::size_t i = begin;
#if GRADCOMP_CPU_SIMD_LEVELS
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
  for (; i < end; ++i) {  // the reference's loop body
    const double r = static_cast<double>(x[i]) / dq;
    double l;
    if (stochastic) {
      l = std::floor(r);
      if (stream.uniform(i) < r - l) l += 1.0;
    } else {
      l = std::round(r);
    }
    const auto level = static_cast<std::int32_t>(l);
    out[i - begin] = level;
    coded_or |= gradcomp::detail::zigzag(level);
  }
  return coded_or;
}

/// Elements per chunk of the range check.
inline constexpr std::size_t grid_check_chunk = std::size_t{1} << 16;

}  // namespace gradcomp::cpu::detail

namespace gradcomp::exec {

/// grid_rounding on exec::par; bit-identical to exec::seq (for the same seed and step when
/// stochastic), and advances step the same way (not at all on error).
template <std::floating_point T>
void compress_with(const par_t& policy, grid_rounding& c, std::span<const T> x, quantized_vector<T>& out) {
  c.validate();
  const T q = static_cast<T>(c.spacing);
  std::atomic<bool> fits{q > T(0) && std::isfinite(q)};
  if (fits.load())
    cpu::detail::for_each_chunk(policy, x.size(), cpu::detail::grid_check_chunk,
                                [&](std::size_t, std::size_t begin, std::size_t end) {
                                  if (!cpu::detail::fits_grid(x.data() + begin, end - begin, q))
                                    fits.store(false, std::memory_order_relaxed);
                                });
  if (!fits.load()) {
    // The reference raises its error (naming the first bad entry, in its order of checks)
    // before writing anything; out and step stay as they are.
    c.compress(seq, x, out);
    return;
  }
  const gradcomp::detail::counter_stream stream(c.seed, c.step);
  const std::uint32_t coded_or = cpu::detail::fill_levels(
      policy, x.size(), out.levels, [&](std::size_t begin, std::size_t end, std::int32_t* levels) -> std::uint32_t {
        return cpu::detail::grid_levels(x.data(), begin, end, q, c.stochastic, stream, levels);
      });
  out.dim = x.size();
  out.scale = q;
  out.level_bits = gradcomp::detail::bits_to_hold(coded_or);
  ++c.step;
}

}  // namespace gradcomp::exec
