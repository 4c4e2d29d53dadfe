#pragma once
// What one training run records, and how runs of the same method over several seeds are
// summarised into one curve with a spread.
//
// Every run of an experiment logs at the same steps (log_schedule), so the runs of one
// method line up point by point: the curve is the mean over seeds at each logged step, the
// band is the min and max. A single final value of batch-1 SGD with a constant step says
// little (it ends in a noise ball), which is why the whole curve and its spread are kept.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace repro {

class progress;  // progress.hpp

/// The steps at which a run logs: 1, 2, 4, ... below `every` (the early phase, where the
/// error of Top-k builds up, happens in the first few steps), then every `every` steps, and
/// always the last step.
inline std::vector<std::uint64_t> log_schedule(std::uint64_t total_steps, std::uint64_t every) {
  if (every == 0) every = 1;
  std::vector<std::uint64_t> steps;
  for (std::uint64_t t = 1; t < every && t <= total_steps; t *= 2) steps.push_back(t);
  for (std::uint64_t t = every; t <= total_steps; t += every) steps.push_back(t);
  if (steps.empty() || steps.back() != total_steps) steps.push_back(total_steps);
  return steps;
}

/// One logged point. Counts are sums over all workers since the start of the run.
struct log_point {
  std::uint64_t step = 0;
  double epoch = 0;              // samples processed by all workers / training-set size
  double elements_sent = 0;      // sum over workers of the values each worker sent up
  double bytes_up = 0;           // sum over workers of the bytes each sent
  double bytes_down = 0;         // sum over workers of the bytes each received
  double objective = 0;          // convex: f(x) - f*; non-convex: mean training loss over the interval
  double mean_error = 0;         // mean over workers and over the steps since the last point of ||e||^2
  double elements_per_step = 0;  // elements sent per step (all workers) since the last point
  double accuracy = 0;           // convex: training accuracy; non-convex: test accuracy
};

/// The CSV columns of a run, in the order of log_point's fields. `objective` is named by the
/// experiment (suboptimality or train_loss).
inline std::vector<std::string> log_columns(const std::string& objective_name, const std::string& accuracy_name) {
  return {"step",         "epoch",         "elements_sent",     "bytes_up",   "bytes_down",
          objective_name, "mean_error_sq", "elements_per_step", accuracy_name};
}

inline std::vector<double> log_values(const log_point& p) {
  return {static_cast<double>(p.step), p.epoch,   p.elements_sent, p.bytes_up, p.bytes_down, p.objective, p.mean_error,
          p.elements_per_step,         p.accuracy};
}

/// One run of one method with one seed.
struct run_record {
  std::string method;
  std::uint64_t seed = 0;
  std::vector<log_point> points;
  double total_error = 0;  // sum over all steps of the mean over workers of ||e_t||^2
  double seconds = 0;      // wall time of the run (not written to the CSV, which must be reproducible)

  const log_point& last() const {
    if (points.empty()) throw std::logic_error("run_record::last: the run " + method + " logged nothing");
    return points.back();
  }
};

/// mean, min and max of one quantity over seeds.
struct spread {
  double mean = 0, min = 0, max = 0;
};

template <class Get>
spread spread_of(const std::vector<run_record>& runs, Get get) {
  spread s{0, std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (const auto& r : runs) {
    const double v = get(r);
    s.mean += v;
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
  }
  if (!runs.empty()) s.mean /= static_cast<double>(runs.size());
  return s;
}

/// The runs of one method over seeds, summarised point by point. Every run must have logged
/// the same steps (they share the schedule).
struct method_curve {
  std::string method;
  std::vector<double> step, epoch;
  std::vector<spread> elements_sent, bytes, objective, mean_error, elements_per_step, accuracy;
};

inline method_curve summarise(const std::vector<run_record>& runs) {
  if (runs.empty()) throw std::logic_error("summarise: no runs");
  method_curve c;
  c.method = runs.front().method;
  const std::size_t n = runs.front().points.size();
  for (const auto& r : runs)
    if (r.points.size() != n)
      throw std::logic_error("summarise: the runs of " + c.method + " logged different numbers of points");
  for (std::size_t i = 0; i < n; ++i) {
    const auto at = [&](auto field) {
      return spread_of(runs, [&](const run_record& r) { return field(r.points[i]); });
    };
    c.step.push_back(static_cast<double>(runs.front().points[i].step));
    c.epoch.push_back(runs.front().points[i].epoch);
    c.elements_sent.push_back(at([](const log_point& p) { return p.elements_sent; }));
    c.bytes.push_back(at([](const log_point& p) { return p.bytes_up + p.bytes_down; }));
    c.objective.push_back(at([](const log_point& p) { return p.objective; }));
    c.mean_error.push_back(at([](const log_point& p) { return p.mean_error; }));
    c.elements_per_step.push_back(at([](const log_point& p) { return p.elements_per_step; }));
    c.accuracy.push_back(at([](const log_point& p) { return p.accuracy; }));
  }
  return c;
}

/// Mean over seeds of the mean objective over the logged points with epoch > from_epoch
/// (e.g. the last epoch): a steadier end-of-run figure than the final point alone.
inline spread tail_objective(const std::vector<run_record>& runs, double from_epoch) {
  return spread_of(runs, [&](const run_record& r) {
    double sum = 0;
    std::size_t count = 0;
    for (const auto& p : r.points)
      if (p.epoch > from_epoch) {
        sum += p.objective;
        ++count;
      }
    return count ? sum / static_cast<double>(count) : r.last().objective;
  });
}

/// What one run is asked to do.
struct run_request {
  std::string method;
  std::uint64_t seed = 0;
  std::uint64_t steps = 0;
  std::vector<std::uint64_t> log_at;  // empty: count only (calibration)
  progress* bar = nullptr;            // advanced by each step on the rank that owns it
};

/// The outcome on every rank: total elements sent (all workers); the record is complete on
/// rank 0 only (it evaluates the objective).
struct run_outcome {
  double elements_sent = 0;
  run_record record;
};

}  // namespace repro
