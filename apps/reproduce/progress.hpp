#pragma once
// A progress indicator for the long loops of the reproduction program.
//
// On a terminal it redraws one line in place (at most ten times a second), so that a run of
// many minutes shows where it is without scrolling the screen away. Written to a file or a
// pipe (CI logs), redraws would be noise, so it writes a few plain lines instead: one at the
// start, one at each 25 % step, one at least every `plain_every` seconds (default 10 s) in
// between, and the final one from finish().
//
// advance() is on the hot path of the loops it measures, so it is one addition and one
// comparison; the clock is read only when the count reaches a threshold, which is set so that
// the clock is read about every 10 ms (from the rate measured so far), at most every 65,536
// items and every 0.5 % of the total. Not thread-safe: call it from one thread.
#include <stdio.h>   // fileno (POSIX)
#include <unistd.h>  // isatty (POSIX)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#if __has_include(<sys/ioctl.h>)
#include <sys/ioctl.h>  // TIOCGWINSZ, where available, to keep the line narrower than the terminal
#endif

namespace repro {

/// A duration as "12s" (under a minute), "3:05" (m:ss) or "1:02:03" (h:mm:ss), rounded to whole
/// seconds; "?" when unknown (negative or not finite).
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0.0) return "?";
  if (seconds >= 360000000.0) return ">100000h";  // also keeps llround in range
  const auto s = static_cast<unsigned long long>(std::llround(seconds));
  char buf[48];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llus", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%llu:%02llu", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

/// Progress of a long loop: on a terminal, one line redrawn in place (\r, at most ~10 times a second):
///   "<label> [#########-----------]  45%  5400/12000  812.3/s  ETA 8s  <note>"
/// Otherwise plain lines: "<label>: 45% (5400/12000), 812.3/s, ETA 8s, <note>".
/// The ETA uses the average rate since the start. total == 0 means "total unknown": only the
/// count and the rate are shown. finish() prints the final state with the total time
/// ("... done in 12.3 s") and a newline; the destructor calls it if it was not called.
class progress {
 public:
  using clock = std::chrono::steady_clock;

  /// Writes to `out` (not owned); redraws in place when `out` is a terminal.
  progress(std::string label, std::size_t total, std::FILE* out = stderr)
      : progress(std::move(label), total, out, out != nullptr && ::isatty(::fileno(out)) == 1) {}

  /// As above with the terminal mode chosen explicitly (for tests, or to force plain lines).
  progress(std::string label, std::size_t total, std::FILE* out, bool terminal)
      : label_(std::move(label)),
        total_(total),
        out_(out),
        terminal_(terminal),
        start_(clock::now()),
        last_tick_(start_),
        last_line_(start_) {
    if (out_ == nullptr) throw std::invalid_argument("progress: the output stream is null");
    if (terminal_)
      draw(start_, false);
    else
      emit(prefix() + "started" + (total_ > 0 ? " (0/" + std::to_string(total_) + ")" : std::string()) +
           note_suffix(", ") + "\n");
    schedule();
  }

  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;

  ~progress() {
    try {
      finish();
    } catch (...) {  // a destructor must not throw; the only possible failure is bad_alloc
    }
  }

  /// Counts n more items done. Cheap (an addition and a comparison) unless output may be due.
  void advance(std::size_t n = 1) {
    done_ += n;
    if (done_ >= next_check_) [[unlikely]]
      tick();
  }

  /// Short text appended to the line (e.g. "loss 0.31"); shown from the next redraw or line on.
  /// Newlines and other control characters are replaced by spaces, so the line stays one line.
  void set_note(std::string note) {
    for (char& c : note)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    note_ = std::move(note);
  }

  /// Plain mode: the longest time between two lines (default 10 s).
  void set_plain_every(std::chrono::milliseconds every) { plain_every_ = every; }

  /// Prints the final state with the total time and a newline; later calls do nothing.
  void finish() {
    if (finished_) return;
    finished_ = true;
    next_check_ = std::numeric_limits<std::size_t>::max();
    const auto now = clock::now();
    if (terminal_) {
      draw(now, true);
    } else {
      emit(prefix() + counts_plain() + ", " + rate_text(now) + ", done in " + elapsed_text(now) + note_suffix(", ") +
           "\n");
    }
  }

  std::size_t done() const noexcept { return done_; }
  std::size_t total() const noexcept { return total_; }
  bool terminal() const noexcept { return terminal_; }

 private:
  static constexpr std::size_t max_stride = 65536;
  static constexpr auto redraw_every = std::chrono::milliseconds(100);

  static double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }

  // Slow path of advance(): decides whether to print and when to look at the clock next.
  void tick() {
    const auto now = clock::now();
    const double dt = seconds(now - last_tick_);
    const std::size_t items = done_ - done_at_last_tick_;
    // Items expected in ~10 ms at the current rate; at most double the previous stride, so that
    // one fast burst does not make the checks rare.
    std::size_t want = stride_ * 2;
    if (dt > 0.0) want = static_cast<std::size_t>(std::min(static_cast<double>(items) / dt * 0.01, 1e18));
    std::size_t cap = max_stride;
    if (total_ > 0) cap = std::min(cap, total_ / 200);
    stride_ = std::clamp<std::size_t>(want, 1, std::max<std::size_t>(1, std::min(cap, stride_ * 2)));
    last_tick_ = now;
    done_at_last_tick_ = done_;

    if (terminal_) {
      const bool complete = total_ > 0 && done_ >= total_;
      if (now - last_line_ >= redraw_every || (complete && !drew_complete_)) {
        drew_complete_ = complete;
        draw(now, false);
      }
    } else {
      const int q = quarter(done_);
      // The 100 % line is left to finish(), which also gives the total time.
      if ((q > last_quarter_ && q < 4) || now - last_line_ >= plain_every_) {
        emit(prefix() + counts_plain() + ", " + rate_text(now) + (total_ > 0 ? ", ETA " + eta_text(now) : "") +
             note_suffix(", ") + "\n");
      }
      last_quarter_ = std::max(last_quarter_, q);
    }
    schedule();
  }

  // Sets the count at which advance() next calls tick().
  void schedule() {
    std::size_t next = done_ + stride_;
    if (total_ > 0 && done_ < total_) {
      next = std::min(next, total_);  // draw 100 % as soon as it is reached
      if (!terminal_)
        for (int k = 1; k <= 3; ++k)
          if (milestone(k) > done_) {
            next = std::min(next, milestone(k));
            break;
          }
    }
    next_check_ = next;
  }

  // Smallest count that is at least k quarters of the total: ceil(k * total / 4) without overflow.
  std::size_t milestone(int k) const {
    const auto uk = static_cast<std::size_t>(k);
    return uk * (total_ / 4) + (uk * (total_ % 4) + 3) / 4;
  }

  // Completed quarters, 0..4 (4 only when done >= total).
  int quarter(std::size_t d) const {
    if (total_ == 0) return 0;
    if (d >= total_) return 4;
    for (int k = 3; k >= 1; --k)
      if (d >= milestone(k)) return k;
    return 0;
  }

  int percent() const {
    if (total_ == 0) return 0;
    if (done_ >= total_) return 100;
    return std::min(99, static_cast<int>(100.0 * static_cast<double>(done_) / static_cast<double>(total_)));
  }

  std::string prefix() const {
    if (label_.empty()) return {};
    return label_ + (terminal_ ? " " : ": ");
  }

  std::string note_suffix(const char* sep) const { return note_.empty() ? std::string() : sep + note_; }

  // "45% (5400/12000)", or "5400" when the total is unknown.
  std::string counts_plain() const {
    if (total_ == 0) return std::to_string(done_);
    return std::to_string(percent()) + "% (" + std::to_string(done_) + "/" + std::to_string(total_) + ")";
  }

  double rate(clock::time_point now) const {
    const double t = seconds(now - start_);
    return t > 0.0 ? static_cast<double>(done_) / t : 0.0;
  }

  std::string rate_text(clock::time_point now) const {
    const double r = rate(now);
    char buf[48];
    if (r >= 1e7)
      std::snprintf(buf, sizeof buf, "%.1fM/s", r / 1e6);
    else if (r >= 1e4)
      std::snprintf(buf, sizeof buf, "%.1fk/s", r / 1e3);
    else if (r >= 10.0)
      std::snprintf(buf, sizeof buf, "%.1f/s", r);
    else
      std::snprintf(buf, sizeof buf, "%.2f/s", r);
    return buf;
  }

  std::string eta_text(clock::time_point now) const {
    if (done_ >= total_) return "0s";
    const double r = rate(now);
    if (done_ == 0 || r <= 0.0) return "?";
    return format_duration(static_cast<double>(total_ - done_) / r);
  }

  std::string elapsed_text(clock::time_point now) const {
    const double t = seconds(now - start_);
    if (t < 60.0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f s", t);
      return buf;
    }
    return format_duration(t);
  }

  // Terminal mode: redraws the line in place; `final` ends it with the total time and a newline.
  void draw(clock::time_point now, bool final) {
    std::string line = prefix();
    if (total_ > 0) {
      constexpr int width = 20;
      const double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
      const int filled = done_ >= total_ ? width : std::min(width - 1, static_cast<int>(frac * width));
      line += '[';
      line.append(static_cast<std::size_t>(filled), '#');
      line.append(static_cast<std::size_t>(width - filled), '-');
      char pct[16];
      std::snprintf(pct, sizeof pct, "]%4d%%  ", percent());
      line += pct;
      line += std::to_string(done_) + "/" + std::to_string(total_);
    } else {
      line += std::to_string(done_);
    }
    line += "  " + rate_text(now);
    if (final)
      line += "  done in " + elapsed_text(now);
    else if (total_ > 0)
      line += "  ETA " + eta_text(now);
    line += note_suffix("  ");

    // Keep the line narrower than the terminal: a wrapped line cannot be redrawn with \r.
    const std::size_t cols = terminal_columns();
    if (cols > 1 && line.size() >= cols) line.resize(cols - 1);

    std::string text = "\r" + line;
    // Blank out the rest of a longer previous line (e.g. a shorter note).
    if (line.size() < last_width_) text.append(last_width_ - line.size(), ' ');
    last_width_ = line.size();
    if (final) text += '\n';
    emit(text);
  }

  std::size_t terminal_columns() const {
#if defined(TIOCGWINSZ)
    struct winsize ws {};
    if (::ioctl(::fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
#endif
    return 0;  // unknown: no truncation
  }

  void emit(const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), out_);
    std::fflush(out_);
    last_line_ = clock::now();
  }

  std::string label_;
  std::string note_;
  std::size_t total_;
  std::size_t done_ = 0;
  std::size_t next_check_ = 0;
  std::size_t stride_ = 1;
  std::size_t done_at_last_tick_ = 0;
  std::size_t last_width_ = 0;
  std::FILE* out_;
  bool terminal_;
  bool finished_ = false;
  bool drew_complete_ = false;
  int last_quarter_ = 0;
  std::chrono::milliseconds plain_every_{10000};
  clock::time_point start_, last_tick_, last_line_;
};

}  // namespace repro
