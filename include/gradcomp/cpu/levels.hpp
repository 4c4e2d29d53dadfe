#pragma once
// What the quantizers (qsgd, grid_rounding) share on exec::par: a parallel loop that writes
// every element's integer level and ORs their zigzag codes (level_bits is the width of that
// OR, and OR does not depend on the order chunks finish in), and SIMD helpers for it.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../detail/bitpack.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"

// The level kernels vectorise 64-bit multiplies (the draws), floor and double -> int32
// conversion. Before AVX2 (SSSE3, SSE4) Highway emulates some of these, and the vector code
// ran slower than the compiler's scalar loop (qsgd: 2x), so only AVX2 and AVX-512 use it.
#if GRADCOMP_CPU_SIMD && HWY_ARCH_X86 && HWY_STATIC_TARGET <= HWY_AVX2
#define GRADCOMP_CPU_SIMD_LEVELS 1
#else
#define GRADCOMP_CPU_SIMD_LEVELS 0
#endif

namespace gradcomp::cpu::detail {

/// Elements per chunk of the level loops.
inline constexpr std::size_t level_chunk = std::size_t{1} << 16;

/// levels.resize(n), then kernel(begin, end, levels + begin) -> the OR of the zigzag codes
/// of the levels it wrote, over chunks of [0, n); returns the OR of them all.
template <class Kernel>
std::uint32_t fill_levels(const exec::par_t& policy, std::size_t n, std::vector<std::int32_t>& levels,
                          Kernel&& kernel) {
  levels.resize(n);
  std::atomic<std::uint32_t> coded_or{0};
  for_each_chunk(policy, n, level_chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    coded_or.fetch_or(kernel(begin, end, levels.data() + begin), std::memory_order_relaxed);
  });
  return coded_or.load(std::memory_order_relaxed);
}

#if GRADCOMP_CPU_SIMD_LEVELS
namespace hn = simd::hn;

/// x[0, lanes of DD) widened to double (exactly).
template <class DD, class T>
HWY_INLINE hn::Vec<DD> load_as_double(DD dd, const T* x) {
  if constexpr (sizeof(T) == 4)
    return hn::PromoteTo(dd, hn::LoadU(hn::Rebind<float, DD>(), x));
  else
    return hn::LoadU(dd, x);
}

/// Integral doubles (in int32 range) to int32 levels, stored at out; returns their zigzag
/// codes (as detail::zigzag) for the caller's OR.
template <class DD>
HWY_INLINE hn::Vec<hn::Rebind<std::uint32_t, DD>> store_levels(DD dd, hn::Vec<DD> l, std::int32_t* out) {
  (void)dd;
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

}  // namespace gradcomp::cpu::detail
