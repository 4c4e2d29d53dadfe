#pragma once
// The convex experiment of the hard-threshold paper (its Figure 1 and appendix C.3):
// regularised logistic regression trained by n workers with EF-SGD, batch 1 per worker and
// step, the step inside the compressed quantity:
//     p_i = e_i + gamma * grad f_j(x);   m_i = C(p_i);   e_i = p_i - decode(m_i);
//     x  -= mean_i decode(m_i)
// with gamma = 1 / (L + l2), l2 = L / 10000, L = sigma_max(A)^2 / (4m). That is exactly
// gc::ef_sgd with lr = gamma, so the runs go through the library's own scheme and any
// communicator: in-process threads (comm::local) or MPI ranks give the same bits.
//
// Methods: SGD without compression (the identity compressor), EF Top-k with a small k, and
// EF hard-threshold with lambda chosen (calibrate_lambda) so that the elements it sends over
// the whole run match Top-k's.
//
// Worker i draws its samples from its own block of a seeded shuffle of the canonically
// ordered rows (samples.hpp), so a run depends on its seed, never on the file's row order.
#include <gradcomp/distributed.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <tuple>
#include <utility>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "calibration.hpp"
#include "curves.hpp"
#include "dataset.hpp"
#include "logistic.hpp"
#include "progress.hpp"
#include "run_log.hpp"
#include "samples.hpp"
#include "util.hpp"

namespace repro {

namespace gc = gradcomp;

enum class start_point { zero, near_optimum };

/// The experiment's knobs (the CLI fills them; the defaults are the paper's where it has one).
struct convex_settings {
  int workers = 20;           // n (with MPI: the number of ranks)
  double epochs = 10;         // passes over the training set by all workers together
  std::size_t k = 0;          // Top-k's k; 0: k_fraction * d, at least 1
  double k_fraction = 0.002;  // the paper's "k very small": 0.2% of d
  int seeds = 3;              // runs per method, seeds seed, seed+1, ...
  std::uint64_t seed = 1;
  start_point start = start_point::zero;
  double start_offset = 0.01;         // near_optimum: x0 = x* + start_offset * (1, ..., 1)
  int points_per_epoch = 10;          // logged points per epoch (plus 1, 2, 4, ... steps early on)
  double tolerance = 0.05;            // hard-threshold's elements within this fraction of Top-k's
  double calibration_fraction = 0.1;  // length of the short calibration runs, as a fraction of a run
};

/// Everything the runs share, computed once (and identically on every MPI rank).
struct convex_problem {
  binary_dataset data;  // in canonical order (samples.hpp)
  double l2 = 0, smoothness = 0, gamma = 0;
  optimum best;  // x* and f*
};

/// The data go into canonical order first, so that L, f* and every run are the same for any
/// order of the rows.
inline convex_problem make_convex_problem(binary_dataset data) {
  convex_problem p;
  p.data = canonical(std::move(data));
  p.smoothness = smoothness(p.data);
  p.l2 = p.smoothness / 10000.0;
  p.gamma = 1.0 / (p.smoothness + p.l2);
  p.best = minimise(logistic_regression(p.data, p.l2), 1e-10);
  return p;
}

/// The run length and Top-k's k that the settings give on this problem.
struct convex_plan {
  std::uint64_t steps = 0;
  std::uint64_t log_every = 0;
  std::size_t k = 0;
};

inline convex_plan plan_of(const convex_problem& p, const convex_settings& s) {
  if (s.workers < 1) throw std::invalid_argument("workers must be >= 1");
  if (!(s.epochs > 0)) throw std::invalid_argument("epochs must be > 0");
  if (s.points_per_epoch < 1) throw std::invalid_argument("points per epoch must be >= 1");
  if (static_cast<std::size_t>(s.workers) > p.data.size())
    throw std::invalid_argument("more workers (" + std::to_string(s.workers) + ") than samples (" +
                                std::to_string(p.data.size()) + ")");
  convex_plan plan;
  const double per_epoch = static_cast<double>(p.data.size()) / s.workers;  // steps per epoch
  plan.steps = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(s.epochs * per_epoch)));
  plan.log_every = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(per_epoch / s.points_per_epoch)));
  const std::size_t d = p.data.dim();
  plan.k = s.k ? s.k : static_cast<std::size_t>(std::max(1.0, std::round(s.k_fraction * static_cast<double>(d))));
  if (plan.k > d)
    throw std::invalid_argument("k = " + std::to_string(plan.k) + " exceeds the dimension " + std::to_string(d));
  return plan;
}

/// One EF-SGD run of `compressor` on this rank's worker. A collective: every rank calls it
/// with the same request.
template <class C, gc::comm::communicator Comm>
run_outcome run_convex(Comm& comm, const convex_problem& p, const convex_settings& s, C compressor,
                       const run_request& req) {
  const auto start_time = std::chrono::steady_clock::now();
  const logistic_regression f(p.data, p.l2);
  const std::size_t d = f.dim();
  std::vector<double> x(d, 0.0), g(d);
  if (s.start == start_point::near_optimum)
    for (std::size_t i = 0; i < d; ++i) x[i] = p.best.x[i] + s.start_offset;

  gc::ef_sgd<C, Comm, double> scheme(std::move(compressor), comm, d, {.lr = p.gamma});
  // This worker's share of the samples (its block of this seed's shuffle, samples.hpp), drawn
  // from uniformly with its own generator.
  const std::vector<std::size_t> mine = worker_rows(p.data.size(), comm.size(), comm.rank(), req.seed);
  std::mt19937_64 rng(worker_seed(req.seed, comm.rank()));
  std::uniform_int_distribution<std::size_t> pick(0, mine.size() - 1);

  run_outcome out;
  out.record.method = req.method;
  out.record.seed = req.seed;
  // The error feedback counts what it sent and sums ||e_t||^2 as it steps.
  const auto totals = [&] {
    const auto& m = scheme.feedback().metrics();
    const gc::traffic& bytes = scheme.bytes().total;
    return worker_totals{static_cast<double>(m.elements_sent), static_cast<double>(bytes.uplink),
                         static_cast<double>(bytes.downlink), m.total_error};
  };
  run_log log(req.log_at);
  for (std::uint64_t t = 1; t <= req.steps; ++t) {
    f.sample_gradient(mine[pick(rng)], x, g);
    scheme.step(gc::exec::seq, std::span<double>(x), std::span<const double>(g));
    if (req.bar) req.bar->advance();
    if (!log.due(t)) continue;
    if (auto point = log.log(comm, t, totals())) {
      point->epoch = static_cast<double>(t) * comm.size() / static_cast<double>(p.data.size());
      point->objective = f.loss(x) - p.best.f;
      point->accuracy = f.accuracy(x);
      out.record.points.push_back(*point);
    }
  }
  const worker_totals all = sum_over_workers(comm, totals()).first;
  out.elements_sent = all.elements_sent;
  out.record.total_error = all.error / comm.size();
  out.record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  return out;
}

/// Finds lambda such that EF hard-threshold sends, over whole runs (mean over the seeds), the
/// same number of elements as EF Top-k (k * n per step) within tolerance / 2. The count
/// falls as lambda grows, so this is a bisection on log(lambda): first over short runs
/// (calibration_fraction of the steps) to get close cheaply, then over full runs, since
/// hard-threshold sends more early on, when the gradients are large, and a short run's rate
/// overstates the whole run's. Every rank sees the same summed counts, so every rank takes
/// the same decisions. A collective.
template <gc::comm::communicator Comm>
calibration calibrate_lambda(Comm& comm, const convex_problem& p, const convex_settings& s, const convex_plan& plan,
                             const std::function<void(const std::string&)>& note = {}) {
  calibration cal;
  const double per_step = static_cast<double>(plan.k) * comm.size();
  // Short runs use the first seed; full runs sum over all seeds, so that the volume matched
  // is the one the comparison reports (the mean over seeds), not one seed's.
  const auto ratio_at = [&](double lambda, std::uint64_t steps, bool full) {
    const int seeds = full ? s.seeds : 1;
    double sent = 0;
    for (int i = 0; i < seeds; ++i) {
      const run_request req{.method = "calibration",
                            .seed = s.seed + static_cast<std::uint64_t>(i),
                            .steps = steps,
                            .log_at = {},
                            .bar = nullptr};
      sent += run_convex(comm, p, s, gc::hard_threshold{.lambda = lambda}, req).elements_sent;
    }
    const double r = sent / (per_step * static_cast<double>(steps) * seeds);
    (full ? cal.full_runs : cal.short_runs) += seeds;
    cal.probes.push_back({lambda, r, full});
    if (note)
      note("lambda " + format_g(lambda) + ": " + format_g(r) + "x Top-k's elements" + (full ? "" : " (short run)"));
    return r;
  };
  const std::uint64_t short_steps =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(s.calibration_fraction * static_cast<double>(plan.steps)));
  // The first guess is gamma (a step's scale for features of order 1); the short runs
  // widen it by 10x per probe until the target is bracketed.
  auto [lambda, r] =
      bisect_log_lambda([&](double l) { return ratio_at(l, short_steps, false); }, p.gamma, s.tolerance / 4, 10.0, 40);
  if (short_steps < plan.steps)
    std::tie(lambda, r) =
        bisect_log_lambda([&](double l) { return ratio_at(l, plan.steps, true); }, lambda, s.tolerance / 2, 1.5, 16);
  cal.lambda = lambda;
  cal.ratio = r;
  if (!(std::abs(cal.ratio - 1.0) <= s.tolerance))
    throw std::runtime_error("calibrate_lambda: no lambda makes hard-threshold send Top-k's volume within " +
                             format_g(100 * s.tolerance) + "% (closest: lambda " + format_g(lambda) + ", " +
                             format_g(cal.ratio) + "x)");
  return cal;
}

}  // namespace repro
