#pragma once
// qsgd on exec::par: the norm as a parallel ordered sum (cpu/reduce.hpp), then every
// element's level in parallel with the same counter-stream draws as the reference.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/qsgd.hpp"
#include "../detail/bitpack.hpp"
#include "../detail/random.hpp"
#include "../detail/strict_fp.hpp"
#include "../payload/quantized.hpp"
#include "counter_draws.hpp"
#include "levels.hpp"
#include "policy.hpp"
#include "reduce.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

/// QSGD's levels of x[begin, end) (scale > 0), written to out[0, end - begin); returns the
/// OR of their zigzag codes. Element i uses draw i of the stream, as the reference does.
template <class T>
GRADCOMP_NO_FP_CONTRACT std::uint32_t qsgd_levels(const T* x, std::size_t begin, std::size_t end, T scale,
                                                  const gradcomp::detail::counter_stream& stream, std::int32_t* out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const double s = static_cast<double>(scale);
  std::uint32_t coded_or = 0;
  std::size_t i = begin;
#if GRADCOMP_CPU_SIMD_LEVELS
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
  for (; i < end; ++i) {  // the reference's loop body
    const double r = std::fabs(static_cast<double>(x[i])) / s;
    double l = std::floor(r);
    if (stream.uniform(i) < r - l) l += 1.0;
    const auto level = static_cast<std::int32_t>(x[i] < T(0) ? -l : l);
    out[i - begin] = level;
    coded_or |= gradcomp::detail::zigzag(level);
  }
  return coded_or;
}

}  // namespace gradcomp::cpu::detail

namespace gradcomp::exec {

/// qsgd on exec::par; bit-identical to exec::seq for the same seed and step, and advances
/// step the same way (not at all on error).
template <std::floating_point T>
void compress_with(const par_t& policy, qsgd& c, std::span<const T> x, quantized_vector<T>& out) {
  c.validate();
  const double norm = cpu::detail::l2_norm(policy, x);
  const T scale = static_cast<T>(norm / static_cast<double>(c.s));
  if (!std::isfinite(norm) || !std::isfinite(scale)) {
    // Bad input (NaN, Inf, overflow): the reference computes the same norm and raises its
    // error, naming the first non-finite entry; out and step stay as they are.
    c.compress(seq, x, out);
    return;
  }
  const gradcomp::detail::counter_stream stream(c.seed, c.step);
  const std::uint32_t coded_or = cpu::detail::fill_levels(
      policy, x.size(), out.levels, [&](std::size_t begin, std::size_t end, std::int32_t* levels) -> std::uint32_t {
        if (!(scale > T(0))) {  // x == 0, or ||x|| / s below T's smallest subnormal: all levels 0
          std::fill(levels, levels + (end - begin), 0);
          return 0;
        }
        return cpu::detail::qsgd_levels(x.data(), begin, end, scale, stream, levels);
      });
  out.dim = x.size();
  out.scale = scale;
  out.level_bits = gradcomp::detail::bits_to_hold(coded_or);
  ++c.step;
}

}  // namespace gradcomp::exec
