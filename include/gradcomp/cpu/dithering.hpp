#pragma once
// dithering on exec::par: the norm in parallel (max |x_i| as terngrad finds it, ||x||_2 as
// qsgd does), then the partition's levels in parallel with the reference's draws, each
// through its SIMD level kernel (simd/levels-inl.hpp: qsgd's for the linear partition).
#include <bit>
#include <cmath>
#include <concepts>
#include <limits>
#include <span>

#include "../compressors/dithering.hpp"
#include "../compressors/qsgd.hpp"
#include "../detail/random.hpp"
#include "../payload/quantized.hpp"
#include "levels.hpp"
#include "max_magnitude.hpp"
#include "policy.hpp"
#include "reduce.hpp"

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// dithering on exec::par; bit-identical to exec::seq for the same seed and step, and
/// advances step the same way (not at all on error).
template <std::floating_point T>
void compress_with(const par_t& policy, dithering& c, std::span<const T> x, quantized_vector<T>& out) {
  c.validate();
  bool usual = true;  // finite input, a finite scale, and every level decodes to a finite value
  T scale{};
  if (c.norm == dithering::max) {
    const auto largest = cpu::detail::max_magnitude_key(policy, x);
    usual = largest < gradcomp::detail::magnitude_key(std::numeric_limits<T>::infinity());
    // The largest key is max |x_i| itself (a magnitude key is |x|'s bits), as detail::max_abs.
    if (usual) scale = c.max_scale(std::bit_cast<T>(largest));
  } else {
    const double norm = cpu::detail::l2_norm(policy, x);
    scale = static_cast<T>(norm / c.divisor());
    usual = std::isfinite(norm) && std::isfinite(scale);
  }
  if (!usual || !gradcomp::detail::every_level_decodes_finite(scale)) {
    // The reference computes the same scale and either raises its error (naming the first
    // bad entry; out and step stay as they are) or compresses.
    c.compress(seq, x, out);
    return;
  }
  const gradcomp::detail::counter_stream stream(c.seed, c.step);
  if (c.partition == dithering::linear)
    cpu::detail::stochastic_levels(policy, x, scale, stream, out);
  else
    cpu::detail::natural_levels(policy, x, scale, stream, out);
  ++c.step;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
