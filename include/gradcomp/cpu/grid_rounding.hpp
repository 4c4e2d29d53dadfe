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
#include "../payload/quantized.hpp"
#include "levels.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"
#include "tuning.hpp"

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// grid_rounding on exec::par; bit-identical to exec::seq (for the same seed and step when
/// stochastic), and advances step the same way (not at all on error).
template <std::floating_point T>
void compress_with(const par_t& policy, grid_rounding& c, std::span<const T> x, quantized_vector<T>& out) {
  c.validate();
  const T q = static_cast<T>(c.spacing);
  // A spacing so large that some int32 levels decode to +-inf (q > max(T) / 2^31) is left to
  // the reference, which checks each element's level against it.
  std::atomic<bool> fits{q > T(0) && std::isfinite(q) && gradcomp::detail::every_level_decodes_finite(q)};
  if (fits.load())
    cpu::detail::for_each_chunk(
        policy, x.size(), cpu::tuning::elementwise::chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
          const bool ok = cpu::simd::dispatch(
              [&](auto tag) { return fits_grid(tag, x.data() + begin, end - begin, q, grid_rounding::max_level); });
          if (!ok) fits.store(false, std::memory_order_relaxed);
        });
  if (!fits.load()) {
    // The reference raises its error (naming the first bad entry, in its order of checks)
    // before writing anything; out and step stay as they are.
    c.compress(seq, x, out);
    return;
  }
  const gradcomp::detail::counter_stream stream(c.seed, c.step);
  cpu::detail::write_levels(
      policy, x.size(), q, level_coding::linear,
      [&](std::size_t begin, std::size_t end, std::int32_t* levels) {
        return cpu::simd::dispatch(
            [&](auto tag) { return grid_levels(tag, x.data(), begin, end, q, c.stochastic, stream, levels); });
      },
      out);
  ++c.step;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
