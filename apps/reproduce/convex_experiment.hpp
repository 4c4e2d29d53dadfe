#pragma once
// The convex comparison end to end: calibrate hard-threshold's lambda, run SGD, EF Top-k and
// EF hard-threshold for every seed, then (rank 0) write the CSVs, plots and summary.json and
// print the table. A collective: every rank calls it with the same arguments.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <filesystem>
#include <string>
#include <vector>

#include "convex.hpp"
#include "report.hpp"

namespace repro {

/// What the runs gave, per method (rank 0; the other ranks get the methods' names only).
struct convex_method_result {
  std::string name;
  std::string compressor;  // e.g. "top_k k=2", "hard_threshold lambda=0.0123"
  std::vector<run_record> runs;
  std::vector<double> elements_sent;  // per seed
};

struct convex_result {
  convex_plan plan;
  calibration lambda;
  std::vector<convex_method_result> methods;
};

namespace detail {

/// All seeds of one method, with one progress bar for them on rank 0.
template <class C, gc::comm::communicator Comm>
convex_method_result run_method(Comm& comm, const convex_problem& p, const convex_settings& s, const convex_plan& plan,
                                const std::string& name, const std::string& description, C compressor) {
  convex_method_result result{name, description, {}, {}};
  const auto schedule = log_schedule(plan.steps, plan.log_every);
  std::unique_ptr<progress> bar;
  if (comm.rank() == 0) bar = std::make_unique<progress>(name, plan.steps * static_cast<std::uint64_t>(s.seeds));
  for (int i = 0; i < s.seeds; ++i) {
    const run_request req{.method = name,
                          .seed = s.seed + static_cast<std::uint64_t>(i),
                          .steps = plan.steps,
                          .log_at = schedule,
                          .bar = bar.get()};
    run_outcome out = run_convex(comm, p, s, compressor, req);
    if (bar)
      bar->set_note("seed " + std::to_string(i + 1) + "/" + std::to_string(s.seeds) + ": f-f* " +
                    format_g(out.record.points.back().objective));
    result.elements_sent.push_back(out.elements_sent);
    result.runs.push_back(std::move(out.record));
  }
  if (bar) bar->finish();
  return result;
}

}  // namespace detail

/// The self-calibrating threshold of the comparison: Top-k's density k / d, and a window of
/// a hundredth of the run (per worker), so that lambda moves smoothly: the run's volume is
/// Top-k's up to window * ln(lambda_end / lambda_start) / steps (budget_threshold.hpp).
inline gc::budget_threshold budget_threshold_of(const convex_problem& p, const convex_plan& plan) {
  return gc::budget_threshold{.density = static_cast<double>(plan.k) / static_cast<double>(p.data.dim()),
                              .window = std::max<std::size_t>(1, static_cast<std::size_t>(plan.steps / 100))};
}

/// Runs the comparison. `which` lists the methods to run among "sgd", "top_k",
/// "hard_threshold" and "budget_threshold" (hard_threshold needs nothing else: its
/// calibration runs Top-k's volume by formula, k * n per step; budget_threshold needs no
/// calibration).
template <gc::comm::communicator Comm>
convex_result run_convex_experiment(Comm& comm, const convex_problem& p, const convex_settings& s,
                                    const std::vector<std::string>& which) {
  convex_result result;
  result.plan = plan_of(p, s);
  const auto& plan = result.plan;
  const auto wants = [&](const char* m) { return std::find(which.begin(), which.end(), m) != which.end(); };
  const bool talk = comm.rank() == 0;
  if (wants("hard_threshold")) {
    if (talk)
      std::printf("calibrating hard-threshold's lambda to Top-k's volume (k = %zu, %d workers)...\n", plan.k,
                  comm.size());
    const auto say = [&](const std::string& line) {
      if (talk) std::printf("  %s\n", line.c_str());
    };
    result.lambda = calibrate_lambda(comm, p, s, plan, say);
    if (talk) std::fflush(stdout);
  }
  if (wants("sgd"))
    result.methods.push_back(detail::run_method(comm, p, s, plan, "sgd", "identity (no compression)", gc::identity{}));
  if (wants("top_k"))
    result.methods.push_back(
        detail::run_method(comm, p, s, plan, "ef_top_k", "top_k k=" + std::to_string(plan.k), gc::top_k{.k = plan.k}));
  if (wants("hard_threshold"))
    result.methods.push_back(detail::run_method(comm, p, s, plan, "ef_hard_threshold",
                                                "hard_threshold lambda=" + format_g(result.lambda.lambda, 6),
                                                gc::hard_threshold{.lambda = result.lambda.lambda}));
  if (wants("budget_threshold")) {
    // No calibration: each worker's threshold starts as its first Top-k and then holds
    // Top-k's density by itself (compressors/budget_threshold.hpp).
    const gc::budget_threshold c = budget_threshold_of(p, plan);
    result.methods.push_back(detail::run_method(comm, p, s, plan, "ef_budget_threshold",
                                                "budget_threshold density=" + format_g(c.density, 4) +
                                                    " window=" + std::to_string(c.window),
                                                c));
  }
  return result;
}

/// Rank 0: CSVs, plots, summary.json and the table on stdout. Returns the summary's path.
inline fs::path write_convex_report(const convex_problem& p, const convex_settings& s, const convex_result& r,
                                    const output_options& out) {
  fs::create_directories(out.dir);
  const auto columns = log_columns("suboptimality", "train_accuracy");
  std::vector<method_curve> curves;
  std::vector<std::vector<fs::path>> csvs;
  for (const auto& m : r.methods) {
    csvs.push_back(write_run_csvs(out.dir, m.runs, columns));
    curves.push_back(summarise(m.runs));
  }

  const std::string what = p.data.name + ", " + std::to_string(s.workers) + " workers, batch 1";
  const auto elements = [](const method_curve& c) -> const std::vector<spread>& { return c.elements_sent; };
  const auto subopt = [](const method_curve& c) -> const std::vector<spread>& { return c.objective; };
  const auto error = [](const method_curve& c) -> const std::vector<spread>& { return c.mean_error; };
  const auto per_step = [](const method_curve& c) -> const std::vector<spread>& { return c.elements_per_step; };
  const std::vector<fs::path> plots = draw_all(
      out,
      {{{"f(x) - f* vs elements sent: " + what, "elements sent (all workers, cumulative)", "f(x) - f*", true, true,
         out.dir / "suboptimality_vs_elements.png"},
        series_of(curves, elements, subopt)},
       {{"f(x) - f* vs epochs: " + what, "epochs", "f(x) - f*", false, true, out.dir / "suboptimality_vs_epochs.png"},
        series_of(curves, elements, subopt, true)},
       {{"error-feedback residual vs epochs: " + what, "epochs", "mean over workers of ||e||^2", true, true,
         out.dir / "error_vs_epochs.png"},
        series_of(curves, elements, error, true)},
       {{"elements sent per step: " + what, "epochs", "elements per step (all workers)", true, true,
         out.dir / "elements_per_step.png"},
        series_of(curves, elements, per_step, true)}});

  // summary.json
  json_writer j;
  j.begin_object();
  j.key("experiment").value("convex");
  j.key("dataset").value(p.data.name);
  j.key("samples").value(static_cast<std::uint64_t>(p.data.size()));
  j.key("dim").value(static_cast<std::uint64_t>(p.data.dim()));
  j.key("positive_label").value(p.data.positive_label);
  j.key("negative_label").value(p.data.negative_label);
  j.key("sample_assignment").value(sample_assignment);
  j.key("workers").value(s.workers);
  j.key("L").value(p.smoothness);
  j.key("l2").value(p.l2);
  j.key("gamma").value(p.gamma);
  j.key("f_star").value(p.best.f);
  j.key("f_star_gradient_norm").value(p.best.gradient_norm);
  j.key("epochs").value(s.epochs);
  j.key("steps").value(static_cast<std::uint64_t>(r.plan.steps));
  j.key("seeds").value(s.seeds);
  j.key("first_seed").value(static_cast<std::uint64_t>(s.seed));
  j.key("start").value(s.start == start_point::zero ? "zero" : "near_optimum");
  j.key("k").value(static_cast<std::uint64_t>(r.plan.k));
  if (r.lambda.lambda > 0) {
    j.key("calibration").begin_object();
    j.key("lambda").value(r.lambda.lambda);
    j.key("ratio").value(r.lambda.ratio);
    j.key("tolerance").value(s.tolerance);
    j.key("short_runs").value(r.lambda.short_runs);
    j.key("full_runs").value(r.lambda.full_runs);
    j.end_object();
  }
  const double last_epoch = std::max(0.0, s.epochs - 1.0);
  j.key("methods").begin_array();
  for (std::size_t i = 0; i < r.methods.size(); ++i) {
    const auto& m = r.methods[i];
    const auto& runs = m.runs;
    j.begin_object();
    j.key("name").value(m.name);
    j.key("compressor").value(m.compressor);
    write_spread(j, "elements_sent", spread_of(runs, [](const run_record& x) { return x.last().elements_sent; }));
    write_spread(j, "bytes",
                 spread_of(runs, [](const run_record& x) { return x.last().bytes_up + x.last().bytes_down; }));
    write_spread(j, "bytes_up", spread_of(runs, [](const run_record& x) { return x.last().bytes_up; }));
    write_spread(j, "final_suboptimality", spread_of(runs, [](const run_record& x) { return x.last().objective; }));
    write_spread(j, "last_epoch_suboptimality", tail_objective(runs, last_epoch));
    write_spread(j, "total_error", spread_of(runs, [](const run_record& x) { return x.total_error; }));
    write_spread(j, "final_train_accuracy", spread_of(runs, [](const run_record& x) { return x.last().accuracy; }));
    write_file_names(j, "csv", csvs[i]);
    j.end_object();
  }
  j.end_array();
  const fs::path summary = finish_summary(j, out.dir, plots);

  // The table.
  std::printf("\n%s: d = %zu, m = %zu, %d workers, %llu steps (%.3g epochs), %d seed(s); f* = %.12g\n",
              p.data.name.c_str(), p.data.dim(), p.data.size(), s.workers,
              static_cast<unsigned long long>(r.plan.steps), s.epochs, s.seeds, p.best.f);
  std::printf("%-18s %-30s %14s %12s %26s %12s %12s\n", "method", "compressor", "elements sent", "bytes",
              "final f-f* (min..max)", "last epoch", "total error");
  for (const auto& m : r.methods) {
    const auto e = spread_of(m.runs, [](const run_record& x) { return x.last().elements_sent; });
    const auto b = spread_of(m.runs, [](const run_record& x) { return x.last().bytes_up + x.last().bytes_down; });
    const auto f = spread_of(m.runs, [](const run_record& x) { return x.last().objective; });
    const auto tail = tail_objective(m.runs, last_epoch);
    const auto err = spread_of(m.runs, [](const run_record& x) { return x.total_error; });
    const std::string range = format_g(f.mean, 3) + " (" + format_g(f.min, 2) + ".." + format_g(f.max, 2) + ")";
    std::printf("%-18s %-30s %14.4g %12s %26s %12.3g %12.3g\n", m.name.c_str(), m.compressor.c_str(), e.mean,
                format_bytes(b.mean).c_str(), range.c_str(), tail.mean, err.mean);
  }
  print_where(out.dir, plots);
  return summary;
}

}  // namespace repro
