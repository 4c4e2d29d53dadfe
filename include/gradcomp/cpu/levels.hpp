#pragma once
// What the quantizers (qsgd, grid_rounding) share on exec::par: a parallel loop that writes
// every element's integer level and ORs their zigzag codes (level_bits is the width of that
// OR, and OR does not depend on the order chunks finish in). The level kernels themselves
// are in simd/levels-inl.hpp.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "parallel.hpp"
#include "policy.hpp"
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

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
