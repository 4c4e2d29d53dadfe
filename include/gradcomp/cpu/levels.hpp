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

#include "../detail/element_rules.hpp"
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

/// gradcomp::detail::write_levels on exec::par: kernel(begin, end, levels + begin) writes the
/// levels of the chunk [begin, end) (never called when scale is 0: then all levels are 0) and
/// returns the OR of their codes under coding.
template <std::floating_point T, class Kernel>
void write_levels(const exec::par_t& policy, std::size_t n, T scale, level_coding coding, Kernel&& kernel,
                  quantized_vector<T>& out) {
  const std::uint32_t coded_or = fill_levels(
      policy, n, out.levels, [&](std::size_t begin, std::size_t end, std::int32_t* levels) -> std::uint32_t {
        if (!(scale > T(0))) {  // all levels 0
          std::fill(levels, levels + (end - begin), 0);
          return 0;
        }
        return kernel(begin, end, levels);
      });
  out.dim = n;
  out.scale = scale;
  out.coding = coding;
  out.level_bits = gradcomp::detail::bits_to_hold(coded_or);
}

/// gradcomp::detail::stochastic_levels (qsgd's and terngrad's levels) on exec::par, with the
/// SIMD level kernel: element i uses draw i of stream, so chunks need no coordination.
template <std::floating_point T>
void stochastic_levels(const exec::par_t& policy, std::span<const T> x, T scale,
                       const gradcomp::detail::counter_stream& stream, quantized_vector<T>& out) {
  write_levels(
      policy, x.size(), scale, level_coding::linear,
      [&](std::size_t begin, std::size_t end, std::int32_t* levels) {
        return cpu::simd::dispatch(
            [&](auto tag) { return qsgd_levels(tag, x.data(), begin, end, scale, stream, levels); });
      },
      out);
}

/// Natural dithering's levels (gradcomp::detail::natural_level, draw i for element i) on
/// exec::par, with the SIMD level kernel (simd/levels-inl.hpp).
template <std::floating_point T>
void natural_levels(const exec::par_t& policy, std::span<const T> x, T scale,
                    const gradcomp::detail::counter_stream& stream, quantized_vector<T>& out) {
  write_levels(
      policy, x.size(), scale, level_coding::power_of_two,
      [&](std::size_t begin, std::size_t end, std::int32_t* levels) {
        return cpu::simd::dispatch(
            [&](auto tag) { return natural_levels(tag, x.data(), begin, end, scale, stream, levels); });
      },
      out);
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
