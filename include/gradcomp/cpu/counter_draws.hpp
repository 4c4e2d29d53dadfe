#pragma once
// detail::counter_stream evaluated for a vector of consecutive counters at once.
//
// Draw i of a (seed, step) stream is mix64(key + (i + 1) * gamma): a pure function of i,
// so a SIMD lane can compute draw i with the same 64-bit integer operations as the scalar
// reference, and the uniform double (bits >> 11) * 2^-53 is exact in both. Lanes therefore
// draw exactly the numbers the reference draws, whatever the vector width or thread.
#include <cstddef>
#include <cstdint>

#include "../detail/random.hpp"
#include "levels.hpp"
#include "simd.hpp"

#if GRADCOMP_CPU_SIMD_LEVELS
namespace gradcomp::cpu::detail {

namespace hn = simd::hn;

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

/// counter_stream::uniform for the counters whose states are z, lane by lane.
template <class DD, class DU = hn::RebindToUnsigned<DD>>
HWY_INLINE hn::Vec<DD> uniform_of(DD dd, hn::Vec<DU> z) {
  const DU du;
  const hn::RebindToSigned<DD> di;
  // detail::mix64, lane by lane (its constants).
  z = hn::Mul(hn::Xor(z, hn::ShiftRight<30>(z)), hn::Set(du, 0xbf58476d1ce4e5b9ULL));
  z = hn::Mul(hn::Xor(z, hn::ShiftRight<27>(z)), hn::Set(du, 0x94d049bb133111ebULL));
  z = hn::Xor(z, hn::ShiftRight<31>(z));
  // (bits >> 11) < 2^53 converts exactly, and the product by 2^-53 is exact.
  return hn::Mul(hn::ConvertTo(dd, hn::BitCast(di, hn::ShiftRight<11>(z))), hn::Set(dd, 0x1.0p-53));
}

/// Stochastic rounding of r with the draws of the counter states: floor(r), or floor(r) + 1
/// when the draw is below r - floor(r), as the reference loops of qsgd and grid_rounding do.
template <class DD, class VU>
HWY_INLINE hn::Vec<DD> stochastic_round(DD dd, hn::Vec<DD> r, VU state) {
  const auto floor_r = hn::Floor(r);
  return hn::IfThenElse(hn::Lt(uniform_of(dd, state), hn::Sub(r, floor_r)), hn::Add(floor_r, hn::Set(dd, 1.0)),
                        floor_r);
}

}  // namespace gradcomp::cpu::detail
#endif
