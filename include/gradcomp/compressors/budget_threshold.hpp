#pragma once
// budget_threshold: hard-threshold whose lambda adapts online so that the average density
// over a window meets a target: Top-k's volume without calibration runs, hard-threshold's
// error behaviour.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../compress.hpp"
#include "../detail/bits.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/sparse.hpp"
#include "hard_threshold.hpp"
#include "top_k.hpp"

namespace gradcomp {

/// A hard-threshold (C(x)_i = x_i if |x_i| >= lambda) with an integral controller on log lambda.
///
/// - The first call (lambda = 0: not calibrated) is Top-k with k = ceil(density * d), and lambda
///   becomes the smallest magnitude it sent: the threshold that sends Top-k's volume on the live
///   gradient, found in the run itself rather than in calibration runs.
/// - Every call after it is hard_threshold{lambda}, and then, with rho the fraction it sent,
///       lambda *= exp((rho / density - 1) / window)        (adapt)
///   Summing over any W consecutive calls gives the identity
///       mean density of those calls = density * (1 + window * ln(lambda_after / lambda_before) / W):
///   the calls sent `density` on average, exactly as far as lambda moved. A large window keeps
///   lambda nearly fixed from call to call, which is what gives hard-threshold its lower total
///   error under error feedback (Sahu et al. 2021: the count follows the error instead of
///   being forced to k every call), but lets the start-up transient (the first Top-k's
///   threshold is too low once a residual has built up) cost more volume; a small one tracks
///   the target more tightly. One call's factor is capped at e^30 (max_log_step), which only a
///   call sending 30 * window times the target reaches; it keeps lambda finite.
/// The controller's arithmetic is scalar and the same on every back end, so exec::par gives
/// the bits of exec::seq. An absolute compressor with the bound d * lambda^2 of the lambda
/// the next call uses (+Inf before calibration: that call is Top-k).
struct budget_threshold {
  static constexpr std::string_view name = "budget_threshold";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  double density = 0.01;     // the target: mean fraction of the d entries sent per call, in (0, 1]
  std::size_t window = 100;  // steps over which the controller corrects (its gain is 1 / window)
  double lambda = 0.0;       // the current threshold; 0 = calibrate on the next call

  /// The largest change of ln(lambda) in one call (a factor e^30): reached only when a call
  /// sends 30 * window times the target, it keeps lambda finite.
  static constexpr double max_log_step = 30.0;

  template <std::floating_point T>
  using payload_type = sparse_vector<T>;

  void validate() const {
    if (!(density > 0.0 && density <= 1.0))
      detail::fail("budget_threshold", "density must be in (0, 1] (got ", density, ")");
    if (window == 0) detail::fail("budget_threshold", "window must be >= 1 (got 0)");
    if (!(lambda >= 0.0 && std::isfinite(lambda)))
      detail::fail("budget_threshold", "lambda must be finite and >= 0 (got ", lambda, ")");
  }

  /// The Top-k of the calibration call: ceil(density * d), at least 1.
  std::size_t calibration_k(std::size_t d) const {
    return std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(density * static_cast<double>(d))));
  }

  double absolute_bound(std::size_t d) const {
    if (lambda == 0.0) return std::numeric_limits<double>::infinity();
    return detail::product_upper_bound(static_cast<double>(d), lambda, lambda);
  }

  /// The controller's step after a call that sent `sent` of d entries with the current lambda.
  void adapt(std::size_t sent, std::size_t d) {
    if (d == 0) return;
    const double rho = static_cast<double>(sent) / static_cast<double>(d);
    lambda *= std::exp(std::min((rho / density - 1.0) / static_cast<double>(window), max_log_step));
  }

  /// One call on any host back end: its Top-k (calibration) or hard-threshold kernel, then the
  /// controller. On error nothing changes.
  template <execution_policy Policy, std::floating_point T, class Index>
  void compress(const Policy& policy, std::span<const T> x, sparse_vector<T, Index>& out) {
    validate();
    if (x.empty()) {
      gradcomp::compress(policy, hard_threshold{.lambda = lambda}, x, out);
      return;
    }
    if (lambda == 0.0) {
      gradcomp::compress(policy, top_k{.k = calibration_k(x.size())}, x, out);
      lambda = smallest_magnitude(out);  // stays 0 (calibrate again) if it sent only zeros
      return;
    }
    gradcomp::compress(policy, hard_threshold{.lambda = lambda}, x, out);
    adapt(out.nnz(), x.size());
  }

 private:
  /// The smallest finite nonzero |value| of a Top-k message (its k-th magnitude), or 0.
  template <class T, class Index>
  static double smallest_magnitude(const sparse_vector<T, Index>& m) {
    double smallest = std::numeric_limits<double>::infinity();
    for (const T v : m.values) {
      const double a = std::fabs(static_cast<double>(v));
      if (std::isfinite(a) && a > 0.0) smallest = std::min(smallest, a);
    }
    return std::isfinite(smallest) ? smallest : 0.0;
  }
};

}  // namespace gradcomp
