#pragma once
// Finding hard-threshold's lambda for a target volume, shared by both experiments.
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace repro {

/// How lambda was found.
struct calibration {
  double lambda = 0;
  double ratio = 0;  // elements sent by hard-threshold / by Top-k (full runs: mean over seeds)
  int short_runs = 0;
  int full_runs = 0;
  struct probe {
    double lambda, ratio;
    bool full;
  };
  std::vector<probe> probes;
};

/// Solves ratio_at(lambda) = 1 for a ratio that falls as lambda grows (sent elements over the
/// target): from `lambda`, steps by `widen` per probe until the target is bracketed, then
/// bisects log(lambda). Stops within tol, when the bracket collapses (the ratio jumps across 1
/// there) or after `budget` probes, and returns the probe closest to 1 as (lambda, ratio).
template <class RatioAt>
std::pair<double, double> bisect_log_lambda(RatioAt&& ratio_at, double lambda, double tol, double widen, int budget) {
  double lo = 0, hi = 0;  // lo sends too many, hi too few
  std::pair<double, double> best{lambda, std::numeric_limits<double>::infinity()};
  for (int i = 0; i < budget; ++i) {
    const double r = ratio_at(lambda);
    if (!(std::abs(r - 1.0) >= std::abs(best.second - 1.0))) best = {lambda, r};
    if (std::abs(r - 1.0) <= tol) break;
    (r > 1.0 ? lo : hi) = lambda;
    if (lo > 0 && hi > 0 && hi / lo < 1.0 + 1e-9) break;
    lambda = lo > 0 && hi > 0 ? std::sqrt(lo * hi) : (r > 1.0 ? lambda * widen : lambda / widen);
  }
  return best;
}

}  // namespace repro
