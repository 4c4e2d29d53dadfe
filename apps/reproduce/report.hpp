#pragma once
// What an experiment leaves in --out: one CSV per run, PNG plots of the methods' curves
// (mean over seeds, min-max band), and the pieces of summary.json that both experiments
// share. Written by rank 0 only.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "csv.hpp"
#include "curves.hpp"
#include "json.hpp"
#include "plot.hpp"
#include "util.hpp"

namespace repro {

namespace fs = std::filesystem;

/// Where the results go, and whether to draw.
struct output_options {
  fs::path dir = "out/reproduce";
  bool plots = true;
};

/// DIR/METHOD_seedS.csv with one row per logged point.
inline fs::path write_run_csv(const fs::path& dir, const run_record& run, const std::vector<std::string>& columns) {
  const fs::path path = dir / (run.method + "_seed" + std::to_string(run.seed) + ".csv");
  csv_writer csv(path, columns);
  for (const auto& p : run.points) csv.row(log_values(p));
  csv.close();
  return path;
}

/// Which quantity of a method_curve goes on an axis.
using curve_axis = std::function<const std::vector<spread>&(const method_curve&)>;

/// One series per method: x is the mean of `x` over seeds (or epochs), y the mean with a
/// min-max band (bands only when there are several seeds).
inline std::vector<series> series_of(const std::vector<method_curve>& curves, const curve_axis& x, const curve_axis& y,
                                     bool x_is_epoch = false) {
  std::vector<series> out;
  for (const auto& c : curves) {
    series s;
    s.title = c.method;
    const auto& ys = y(c);
    bool spread_seen = false;
    for (std::size_t i = 0; i < ys.size(); ++i) {
      s.x.push_back(x_is_epoch ? c.epoch[i] : x(c)[i].mean);
      s.y.push_back(ys[i].mean);
      s.y_low.push_back(ys[i].min);
      s.y_high.push_back(ys[i].max);
      spread_seen = spread_seen || ys[i].min != ys[i].max;
    }
    if (!spread_seen) s.y_low.clear(), s.y_high.clear();
    out.push_back(std::move(s));
  }
  return out;
}

/// Draws one plot; says so on stdout, and where it failed why. Returns the PNG's path, or
/// an empty path when no plot was made.
inline fs::path draw(const plot_spec& spec, const std::vector<series>& lines) {
  std::string why;
  if (plot_png(spec, lines, &why)) return spec.png;
  std::printf("no plot %s: %s\n", spec.png.filename().string().c_str(), why.c_str());
  return {};
}

/// summary.json's per-method "spread" objects.
inline void write_spread(json_writer& j, std::string_view key, const spread& s) {
  j.key(key).begin_object().key("mean").value(s.mean).key("min").value(s.min).key("max").value(s.max).end_object();
}

/// Writes DIR/METHOD_seedS.csv for each run; returns their paths.
inline std::vector<fs::path> write_run_csvs(const fs::path& dir, const std::vector<run_record>& runs,
                                            const std::vector<std::string>& columns) {
  std::vector<fs::path> files;
  for (const auto& run : runs) files.push_back(write_run_csv(dir, run, columns));
  return files;
}

/// Draws every plot (when wanted); returns the paths of those made.
inline std::vector<fs::path> draw_all(const output_options& out,
                                      const std::vector<std::pair<plot_spec, std::vector<series>>>& plots) {
  std::vector<fs::path> made;
  if (!out.plots) return made;
  for (const auto& [spec, lines] : plots)
    if (fs::path png = draw(spec, lines); !png.empty()) made.push_back(std::move(png));
  return made;
}

/// summary.json: a list of file names under `key`.
inline void write_file_names(json_writer& j, std::string_view key, const std::vector<fs::path>& files) {
  j.key(key).begin_array();
  for (const auto& f : files) j.value(f.filename().string());
  j.end_array();
}

/// Closes summary.json's top object with the plots and writes DIR/summary.json.
inline fs::path finish_summary(json_writer& j, const fs::path& dir, const std::vector<fs::path>& plots) {
  write_file_names(j, "plots", plots);
  j.end_object();
  const fs::path summary = dir / "summary.json";
  j.write(summary);
  return summary;
}

/// The last lines on stdout: where the results are.
inline void print_where(const fs::path& dir, const std::vector<fs::path>& plots) {
  std::printf("\nresults in %s (summary.json, one CSV per run%s", dir.string().c_str(),
              plots.empty() ? ")\n" : ", plots:");
  for (const auto& f : plots) std::printf("\n  %s", f.string().c_str());
  if (!plots.empty()) std::printf(")\n");
  std::fflush(stdout);
}

}  // namespace repro
