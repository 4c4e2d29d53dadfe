#pragma once
// Gradient clipping by norm, and DGC's local clipping threshold (Lin et al. 2018, "Deep
// gradient compression", section 3.2).
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>

#include "../backend.hpp"
#include "../error.hpp"
#include "../execution.hpp"

namespace gradcomp {

/// DGC's local gradient clipping: each of `workers` workers clips its own gradient, before
/// adding it to its error-feedback accumulator, at max_norm / sqrt(workers), so that the sum
/// of the workers' gradients (whose norm grows as sqrt(workers) for independent ones) is held
/// to the threshold a single trainer would use on the whole batch.
inline double local_clip_norm(double max_norm, std::size_t workers) {
  if (!(max_norm > 0.0) || !std::isfinite(max_norm))
    detail::fail("local_clip_norm", "max_norm must be finite and > 0 (got ", max_norm, ")");
  if (workers == 0) detail::fail("local_clip_norm", "workers must be >= 1 (got 0)");
  return max_norm / std::sqrt(static_cast<double>(workers));
}

/// Scales g in place so that ||g||_2 <= max_norm: by T(max_norm / ||g||_2) when the norm is
/// larger, not at all otherwise. Returns the factor applied (1 when none). The norm is the
/// reference's ordered sum of squares (every back end gives its bits) and the scaling one
/// rounding per element, so every back end clips to the same bits. Throws gc::error, leaving
/// g unchanged, if max_norm is not finite and positive or ||g||^2 is not finite (a NaN or Inf
/// in g, or double entries whose squares overflow).
template <execution_policy Policy, std::floating_point T>
T clip_to_norm(const Policy& policy, std::span<T> g, double max_norm) {
  if (!(max_norm > 0.0) || !std::isfinite(max_norm))
    detail::fail("clip_to_norm", "max_norm must be finite and > 0 (got ", max_norm, ")");
  const double squares = backend::run<backend::squared_norm_hook>(policy, std::span<const T>(g));
  if (!std::isfinite(squares))
    detail::fail("clip_to_norm", "||g||^2 = ", squares, " is not finite (a NaN or Inf in g, or an overflow)");
  const double norm = std::sqrt(squares);
  if (norm <= max_norm) return T(1);
  const T factor = static_cast<T>(max_norm / norm);
  backend::run<backend::scale_hook>(policy, g, factor);
  return factor;
}

}  // namespace gradcomp
