#pragma once
// PNG line plots for the reproduction program, drawn by gnuplot.
//
// gnuplot rather than a plotting library, so that the program needs nothing beyond the
// standard library to build; where gnuplot is missing the experiment still runs and writes its
// CSV files, and plot_png() says why there is no image. Each plot leaves a self-contained
// script next to the PNG (same stem, .gp, data inline as $data blocks), so a figure can be
// restyled and redrawn by hand: cd into its directory and run `gnuplot NAME.gp`.
//
// Data are written as shortest round-trip numbers. Points gnuplot cannot draw (not finite, or
// not positive on a log axis) are left out with a blank line, which gnuplot draws as a gap,
// instead of being passed to it (a 0 on a log axis makes gnuplot drop the point with a
// warning; "nan" or "inf" can break autoscaling).
#include <stdio.h>     // popen, pclose (POSIX)
#include <sys/wait.h>  // WIFEXITED, WEXITSTATUS (POSIX)

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace repro {

/// One line of a plot, with an optional band (e.g. min/max over seeds) drawn under it.
struct series {
  std::string title;
  std::vector<double> x, y;
  std::vector<double> y_low, y_high;  // empty = no band; else both the same size as x
};

struct plot_spec {
  std::string title, xlabel, ylabel;  // shown literally (noenhanced); a title may have newlines
  bool log_x = false, log_y = false;
  std::filesystem::path png;  // output image; the script goes beside it with extension .gp
};

namespace plot_detail {

/// `s` as one shell word: single quotes, each embedded ' written '\''.
inline std::string shell_quote(std::string_view s) {
  std::string q = "'";
  for (const char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

/// `s` as a gnuplot string expression. Single-quoted strings take no escapes and no backquote
/// or macro substitution (double-quoted ones run `commands`). A newline cannot appear in one,
/// and gnuplot's doubled quote ('') fails when two quotes follow each other, so newlines and
/// quotes are joined in as double-quoted pieces: 'it'."'".'s'."\n".'line 2'. Other control
/// characters become spaces.
inline std::string gp_quote(std::string_view s) {
  std::string q = "'";
  for (const char c : s) {
    if (c == '\'')
      q += "'.\"'\".'";
    else if (c == '\n')
      q += "'.\"\\n\".'";
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      q += ' ';
    else
      q += c;
  }
  return q + "'";
}

inline void append_number(std::string& out, double v) {
  char buf[64];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

inline bool drawable(double v, bool log_axis) { return std::isfinite(v) && (!log_axis || v > 0.0); }

/// Appends "$NAME << EOD", the rows whose every value is drawable on its axis (log[k] says
/// whether column k is on a log axis), a blank line where rows were dropped, and "EOD".
/// Returns the number of rows written.
template <std::size_t K>
std::size_t data_block(std::string& gp, const std::string& name, std::size_t n,
                       const std::vector<double>* const (&cols)[K], const bool (&log)[K]) {
  gp += name + " << EOD\n";
  std::size_t written = 0;
  bool gap = false;
  for (std::size_t i = 0; i < n; ++i) {
    bool ok = true;
    for (std::size_t k = 0; k < K; ++k) ok = ok && drawable((*cols[k])[i], log[k]);
    if (!ok) {
      gap = written > 0;
      continue;
    }
    if (gap) gp += '\n';  // one blank line: gnuplot breaks the line (and the band) here
    gap = false;
    for (std::size_t k = 0; k < K; ++k) {
      if (k) gp += ' ';
      append_number(gp, (*cols[k])[i]);
    }
    gp += '\n';
    ++written;
  }
  gp += "EOD\n";
  return written;
}

// Line colours (matplotlib's "tab10"); after ten series they repeat with another dash pattern.
inline constexpr const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/// Runs `command` through the shell; returns its exit status (-1 if it could not run or did
/// not exit normally) and puts what it wrote to stdout and stderr in `output`.
inline int run_capture(const std::string& command, std::string& output) {
  output.clear();
  std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  std::size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0)
    if (output.size() < 65536) output.append(buf, got);
  const int status = ::pclose(p);
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

/// The last few lines of gnuplot's output, for a one-line explanation.
inline std::string tail(std::string s, std::size_t max_chars = 600) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > max_chars) s = "..." + s.substr(s.size() - max_chars);
  for (char& c : s)
    if (c == '\n') c = ' ';
  return s;
}

}  // namespace plot_detail

/// True if `gnuplot` is on the PATH (runs `command -v gnuplot` via std::system).
inline bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

/// Writes a self-contained gnuplot script next to the PNG (same stem, .gp; data inline as $data
/// blocks so the script reruns by itself) and runs gnuplot on it, in the PNG's directory
/// (pngcairo, falling back to png). Returns true when the PNG was written; when gnuplot is
/// missing or fails, returns false, leaves the script, and says why in `*why` (if non-null).
/// A previous PNG of the same name is removed first, so a true result always means a new image.
///
/// On log axes, points with non-positive or non-finite values are dropped (with a gap); on
/// linear axes non-finite ones are. Bands are semi-transparent filled curves under the lines;
/// lines have distinct colours and width 2. Titles and labels are shown literally (noenhanced).
///
/// Throws std::invalid_argument for an empty spec.png, no series, or a series whose y or band
/// sizes differ from its x size; std::runtime_error "cannot write PATH" if the script cannot
/// be written.
inline bool plot_png(const plot_spec& spec, const std::vector<series>& lines, std::string* why = nullptr) {
  namespace fs = std::filesystem;
  auto fail = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return false;
  };

  if (spec.png.empty()) throw std::invalid_argument("plot_png: no output path (plot_spec::png is empty)");
  if (lines.empty()) throw std::invalid_argument("plot_png: no series to plot in " + spec.png.string());
  for (const auto& s : lines) {
    const std::string name = "plot_png: series \"" + s.title + "\" in " + spec.png.string() + ": ";
    if (s.y.size() != s.x.size())
      throw std::invalid_argument(name + std::to_string(s.x.size()) + " x values but " + std::to_string(s.y.size()) +
                                  " y values");
    const bool band = !s.y_low.empty() || !s.y_high.empty();
    if (band && (s.y_low.size() != s.x.size() || s.y_high.size() != s.x.size()))
      throw std::invalid_argument(name + "band of " + std::to_string(s.y_low.size()) + " low and " +
                                  std::to_string(s.y_high.size()) + " high values for " + std::to_string(s.x.size()) +
                                  " x values (both must be empty or match x)");
  }

  const fs::path png = fs::absolute(spec.png);
  fs::path script = png;
  script.replace_extension(".gp");
  const fs::path dir = png.parent_path();

  // Data blocks, and the plot elements that use them: all bands first, so lines are drawn over them.
  std::string data, bands, curves;
  std::size_t points = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const series& s = lines[i];
    const std::string colour = std::string("lc rgb '") + plot_detail::colours[i % 10] + "'";
    const std::string fill = std::string("fc rgb '") + plot_detail::colours[i % 10] + "'";
    if (!s.y_low.empty()) {
      const std::vector<double>* const cols[] = {&s.x, &s.y_low, &s.y_high};
      const bool log[] = {spec.log_x, spec.log_y, spec.log_y};
      const std::string name = "$band" + std::to_string(i);
      if (plot_detail::data_block(data, name, s.x.size(), cols, log) > 0)
        (bands += bands.empty() ? "" : ", \\\n     ") +=
            name + " using 1:2:3 with filledcurves " + fill + " fs transparent solid 0.2 noborder notitle";
    }
    const std::vector<double>* const cols[] = {&s.x, &s.y};
    const bool log[] = {spec.log_x, spec.log_y};
    const std::string name = "$data" + std::to_string(i);
    const std::size_t n = plot_detail::data_block(data, name, s.x.size(), cols, log);
    points += n;
    if (n > 0) {
      (curves += curves.empty() ? "" : ", \\\n     ") +=
          name + " using 1:2 with lines lw 2 " + colour + " dt " + std::to_string(1 + (i / 10) % 5) + " " +
          (s.title.empty() ? std::string("notitle") : "title " + plot_detail::gp_quote(s.title) + " noenhanced");
    }
  }

  auto write_script = [&](const char* terminal) {
    std::string comment_title = spec.title;
    for (char& c : comment_title)
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    std::string gp = "# " + (comment_title.empty() ? std::string("plot") : comment_title) +
                     "\n# Written by the reproduce program; data are inline. Redraw with: gnuplot " +
                     plot_detail::shell_quote(script.filename().string()) + "  (in this directory)\n";
    gp += data;
    gp += std::string("set terminal ") + terminal + "\n";
    gp += "set output " + plot_detail::gp_quote(png.filename().string()) + "\n";
    if (!spec.title.empty()) gp += "set title " + plot_detail::gp_quote(spec.title) + " noenhanced\n";
    if (!spec.xlabel.empty()) gp += "set xlabel " + plot_detail::gp_quote(spec.xlabel) + " noenhanced\n";
    if (!spec.ylabel.empty()) gp += "set ylabel " + plot_detail::gp_quote(spec.ylabel) + " noenhanced\n";
    // '%g' tick labels: gnuplot's default prints e.g. "0.000010" on a log axis.
    if (spec.log_x) gp += "set logscale x\nset format x '%g'\n";
    if (spec.log_y) gp += "set logscale y\nset format y '%g'\n";
    gp += "set grid\n";
    gp += lines.size() <= 4 ? "set key top right box opaque\n" : "set key outside right top\n";
    gp += "plot " + bands + (bands.empty() || curves.empty() ? "" : ", \\\n     ") + curves + "\n";
    std::ofstream f(script, std::ios::binary | std::ios::trunc);
    f << gp;
    f.flush();
    if (!f) throw std::runtime_error("cannot write " + script.string());
  };

  std::error_code ec;
  fs::remove(png, ec);  // so that an old image is never taken for a new one

  if (points == 0) {
    write_script("pngcairo enhanced size 1000,650 font ',11'");
    return fail("nothing to plot: no drawable points in any series (script left at " + script.string() + ")");
  }
  if (!have_gnuplot()) {
    write_script("pngcairo enhanced size 1000,650 font ',11'");
    return fail("gnuplot not found on the PATH (install gnuplot-nox); script left at " + script.string());
  }

  const std::string command = "cd " + plot_detail::shell_quote(dir.string()) + " && gnuplot " +
                              plot_detail::shell_quote(script.filename().string());
  std::string output, error;
  // pngcairo draws antialiased lines; gnuplot builds without cairo only have png (truecolor for the bands' alpha).
  for (const char* terminal : {"pngcairo enhanced size 1000,650 font ',11'", "png truecolor enhanced size 1000,650"}) {
    write_script(terminal);
    const int status = plot_detail::run_capture(command, output);
    if (status == 0 && fs::is_regular_file(png, ec) && fs::file_size(png, ec) > 0) return true;
    // The last attempt's error: when pngcairo is missing, the png attempt shows any other problem.
    error = "exit status " + std::to_string(status) + (output.empty() ? "" : ": " + plot_detail::tail(output));
  }
  return fail("gnuplot failed (" + error + "); script left at " + script.string());
}

}  // namespace repro
