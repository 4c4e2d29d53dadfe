#pragma once
// The bookkeeping both experiments' training loops share: a worker's running totals, their
// sum over workers, and the log point they give at a logged step.
#include <gradcomp/comm/collectives.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "curves.hpp"

namespace repro {

/// What one worker has done so far in a run.
struct worker_totals {
  double elements_sent = 0;  // values it sent up
  double bytes_up = 0;
  double bytes_down = 0;
  double error = 0;  // sum over its steps of ||e_t||^2
};

/// The sum over workers of each total and of `extra`, added in rank order (the same bits on
/// every communicator). A collective.
template <class Comm>
std::pair<worker_totals, double> sum_over_workers(Comm& comm, const worker_totals& mine, double extra = 0) {
  std::vector<double> sums{mine.elements_sent, mine.bytes_up, mine.bytes_down, mine.error, extra};
  gradcomp::comm::allreduce_sum(comm, std::span<double>(sums));
  return {{sums[0], sums[1], sums[2], sums[3]}, sums[4]};
}

/// Turns the workers' totals at the logged steps into log points: counts as they are, and the
/// error and elements per step over the interval since the previous point.
class run_log {
 public:
  explicit run_log(std::vector<std::uint64_t> steps) : steps_(std::move(steps)) {}

  bool due(std::uint64_t step) const noexcept { return next_ < steps_.size() && steps_[next_] == step; }

  /// At a due step: sums the workers' totals and their `interval_sum` (e.g. the training loss
  /// summed since the previous point). Rank 0 gets the point, with `objective` the mean of
  /// interval_sum over workers and steps and `epoch` and `accuracy` left to the caller; the
  /// other ranks get nothing. A collective.
  template <class Comm>
  std::optional<log_point> log(Comm& comm, std::uint64_t step, const worker_totals& mine, double interval_sum = 0) {
    ++next_;
    const auto [all, extra] = sum_over_workers(comm, mine, interval_sum);
    const double n = comm.size();
    const double interval = static_cast<double>(step - last_step_);
    log_point p;
    p.step = step;
    p.elements_sent = all.elements_sent;
    p.bytes_up = all.bytes_up;
    p.bytes_down = all.bytes_down;
    p.mean_error = (all.error - last_.error) / (n * interval);
    p.elements_per_step = (all.elements_sent - last_.elements_sent) / interval;
    p.objective = extra / (n * interval);
    last_ = all;
    last_step_ = step;
    if (comm.rank() != 0) return std::nullopt;
    return p;
  }

 private:
  std::vector<std::uint64_t> steps_;
  std::size_t next_ = 0;
  worker_totals last_;  // summed over workers, at the previous point
  std::uint64_t last_step_ = 0;
};

}  // namespace repro
