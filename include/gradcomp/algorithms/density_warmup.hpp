#pragma once
// DGC's warm-up of the density (Lin et al. 2018, "Deep gradient compression", section 4):
// sparsify less at the start of training and tighten exponentially.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "../error.hpp"

namespace gradcomp {

/// A density that falls exponentially from `initial` to `final` in `stages` equal stages of
/// `stage_steps` steps each, then stays at `final`:
///     density(t) = initial * (final / initial)^(s / stages),   s = t / stage_steps < stages
///     density(t) = final                                       afterwards.
/// DGC's schedule (sparsity 75%, 93.75%, 98.4375%, 99.6%, 99.9%, one stage per epoch) is
/// {.initial = 0.25, .final = 0.001, .stage_steps = steps per epoch, .stages = 4}. Use it to
/// set Top-k's k, or budget_threshold's density, at every step.
struct density_warmup {
  double initial = 0.25;
  double final = 0.001;
  std::uint64_t stage_steps = 1;
  std::uint64_t stages = 4;

  void validate() const {
    if (!(final > 0.0 && final <= 1.0)) detail::fail("density_warmup", "final must be in (0, 1] (got ", final, ")");
    if (!(initial >= final && initial <= 1.0))
      detail::fail("density_warmup", "initial must be in [final, 1] (got ", initial, ", final ", final, ")");
    if (stage_steps == 0) detail::fail("density_warmup", "stage_steps must be >= 1 (got 0)");
  }

  /// The density at step t (0-based).
  double density(std::uint64_t t) const {
    validate();
    const std::uint64_t s = t / stage_steps;
    if (s >= stages) return final;
    return initial * std::pow(final / initial, static_cast<double>(s) / static_cast<double>(stages));
  }

  /// Top-k's k at step t for dimension d: ceil(density(t) * d), at least 1 (0 for d = 0).
  std::size_t k(std::uint64_t t, std::size_t d) const {
    if (d == 0) return 0;
    const double k = std::ceil(density(t) * static_cast<double>(d));
    return std::clamp<std::size_t>(static_cast<std::size_t>(k), 1, d);
  }
};

}  // namespace gradcomp
