#pragma once
// terngrad on exec::par: max |x_i| in parallel (max_magnitude_key, as the casts), then
// qsgd's parallel level kernel with it.
#include <bit>
#include <concepts>
#include <limits>
#include <span>

#include "../compressors/terngrad.hpp"
#include "../detail/bits.hpp"
#include "../detail/random.hpp"
#include "../payload/quantized.hpp"
#include "levels.hpp"
#include "max_magnitude.hpp"
#include "policy.hpp"

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// terngrad on exec::par; bit-identical to exec::seq for the same seed and step, and
/// advances step the same way (not at all on error).
template <std::floating_point T>
void compress_with(const par_t& policy, terngrad& c, std::span<const T> x, quantized_vector<T>& out) {
  const auto largest = cpu::detail::max_magnitude_key(policy, x);
  if (largest >= gradcomp::detail::magnitude_key(std::numeric_limits<T>::infinity())) {
    c.compress(seq, x, out);  // the reference names the first NaN or Inf; out and step stay
    return;
  }
  // The largest key is max |x_i| itself (a magnitude key is |x|'s bits), as detail::max_abs.
  cpu::detail::stochastic_levels(policy, x, std::bit_cast<T>(largest), gradcomp::detail::counter_stream(c.seed, c.step),
                                 out);
  ++c.step;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
