#pragma once
// terngrad on exec::par: max |x_i| in parallel, then qsgd's parallel level kernel with it.
#include <concepts>
#include <span>

#include "../compressors/terngrad.hpp"
#include "../detail/random.hpp"
#include "../payload/quantized.hpp"
#include "levels.hpp"
#include "policy.hpp"
#include "reduce.hpp"

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// terngrad on exec::par; bit-identical to exec::seq for the same seed and step, and
/// advances step the same way (not at all on error).
template <std::floating_point T>
void compress_with(const par_t& policy, terngrad& c, std::span<const T> x, quantized_vector<T>& out) {
  const auto bound = cpu::detail::max_abs(policy, x);
  if (!bound.finite) {
    c.compress(seq, x, out);  // the reference names the first NaN or Inf; out and step stay
    return;
  }
  cpu::detail::stochastic_levels(policy, x, bound.largest, gradcomp::detail::counter_stream(c.seed, c.step), out);
  ++c.step;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
