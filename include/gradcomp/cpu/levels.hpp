#pragma once
// What the quantizers (qsgd, grid_rounding) share on exec::par: a parallel loop that writes
// every element's integer level and ORs their zigzag codes (level_bits is the width of that
// OR, and OR does not depend on the order chunks finish in). The level kernels themselves
// are in simd/levels-inl.hpp.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <algorithm>
#include <concepts>
#include <span>

#include "../detail/random.hpp"
#include "../payload/quantized.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"
#include "tuning.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// levels.resize(n), then kernel(begin, end, levels + begin) -> the OR of the zigzag codes
/// of the levels it wrote, over chunks of [0, n); returns the OR of them all.
template <class Kernel>
std::uint32_t fill_levels(const exec::par_t& policy, std::size_t n, std::vector<std::int32_t>& levels,
                          Kernel&& kernel) {
  levels.resize(n);
  std::atomic<std::uint32_t> coded_or{0};
  for_each_chunk(policy, n, tuning::elementwise::chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    coded_or.fetch_or(kernel(begin, end, levels.data() + begin), std::memory_order_relaxed);
  });
  return coded_or.load(std::memory_order_relaxed);
}

/// gradcomp::detail::stochastic_levels (qsgd's and terngrad's levels) on exec::par, with the
/// SIMD level kernel: element i uses draw i of stream, so chunks need no coordination.
template <std::floating_point T>
void stochastic_levels(const exec::par_t& policy, std::span<const T> x, T scale,
                       const gradcomp::detail::counter_stream& stream, quantized_vector<T>& out) {
  const std::uint32_t coded_or = fill_levels(
      policy, x.size(), out.levels, [&](std::size_t begin, std::size_t end, std::int32_t* levels) -> std::uint32_t {
        if (!(scale > T(0))) {  // all levels 0
          std::fill(levels, levels + (end - begin), 0);
          return 0;
        }
        return cpu::simd::dispatch(
            [&](auto tag) { return qsgd_levels(tag, x.data(), begin, end, scale, stream, levels); });
      });
  out.dim = x.size();
  out.scale = scale;
  out.level_bits = gradcomp::detail::bits_to_hold(coded_or);
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
