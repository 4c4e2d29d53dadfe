#pragma once
// qsgd on exec::par: the norm as a parallel ordered sum (cpu/reduce.hpp), then every
// element's level in parallel with the same counter-stream draws as the reference
// (simd/levels-inl.hpp).
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/qsgd.hpp"
#include "../detail/bitpack.hpp"
#include "../detail/random.hpp"
#include "../payload/quantized.hpp"
#include "levels.hpp"
#include "policy.hpp"
#include "reduce.hpp"
#include "simd.hpp"

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// qsgd on exec::par; bit-identical to exec::seq for the same seed and step, and advances
/// step the same way (not at all on error).
template <std::floating_point T>
void compress_with(const par_t& policy, qsgd& c, std::span<const T> x, quantized_vector<T>& out) {
  c.validate();
  const double norm = cpu::detail::l2_norm(policy, x);
  const T scale = static_cast<T>(norm / static_cast<double>(c.s));
  if (!std::isfinite(norm) || !std::isfinite(scale) || !gradcomp::detail::every_level_decodes_finite(scale)) {
    // Bad input (NaN, Inf, overflow), or a scale so large (> max(T) / 2^31) that some levels
    // would decode to +-inf: the reference computes the same norm and either raises its error
    // (naming the first bad entry; out and step stay as they are) or compresses.
    c.compress(seq, x, out);
    return;
  }
  cpu::detail::stochastic_levels(policy, x, scale, gradcomp::detail::counter_stream(c.seed, c.step), out);
  ++c.step;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
