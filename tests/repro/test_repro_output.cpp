// Tests of the reproduction program's output helpers: CSV files, the JSON writer, the progress
// indicator and the gnuplot plots (apps/reproduce/{csv,json,progress,plot}.hpp).
#include <doctest/doctest.h>
#include <unistd.h>  // getpid

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "csv.hpp"
#include "json.hpp"
#include "plot.hpp"
#include "progress.hpp"

namespace fs = std::filesystem;

namespace {

// A fresh directory under the system's temporary directory, removed with its contents at scope exit.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<unsigned> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = fs::temp_directory_path() / ("repro_output_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(stamp) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  fs::path operator/(const std::string& name) const { return path / name; }
};

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// The what() of the exception of type E that f throws; fails the test if it throws nothing or another type.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("threw the wrong exception type: " << e.what());
    return {};
  }
  FAIL("did not throw");
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Everything written so far to a tmpfile().
std::string contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

std::size_t count_char(const std::string& s, char c) {
  std::size_t n = 0;
  for (const char x : s) n += x == c;
  return n;
}

struct tmp_file {
  std::FILE* f = std::tmpfile();
  tmp_file() { REQUIRE(f != nullptr); }
  ~tmp_file() { std::fclose(f); }
  tmp_file(const tmp_file&) = delete;
  tmp_file& operator=(const tmp_file&) = delete;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// CSV

TEST_CASE("repro output: csv round trip is bit-exact for awkward doubles") {
  temp_dir dir;
  const auto path = dir / "awkward.csv";
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> values = {1.0 / 3.0,
                                      1e-300,
                                      4.9e-324,  // the smallest denormal
                                      -0.0,
                                      1e308,
                                      std::numeric_limits<double>::max(),
                                      std::numeric_limits<double>::min(),
                                      -2.2250738585072009e-308,  // the largest denormal, negated
                                      0.1,
                                      123456789012345678.0,
                                      -7.0,
                                      nan,
                                      inf,
                                      -inf};
  {
    repro::csv_writer w(path, {"i", "value", "twice"});
    for (std::size_t i = 0; i < values.size(); ++i) w.row({static_cast<double>(i), values[i], 2.0 * values[i]});
    w.close();
  }
  const std::string text = read_file(path);
  CHECK(text.starts_with("i,value,twice\n"));
  CHECK(contains(text, ",nan,"));
  CHECK(contains(text, ",inf,"));
  CHECK(contains(text, ",-inf,"));
  CHECK(contains(text, ",-0,"));

  const repro::csv_table t = repro::read_csv(path);
  REQUIRE(t.columns == std::vector<std::string>{"i", "value", "twice"});
  REQUIRE(t.rows.size() == values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    CAPTURE(i);
    REQUIRE(t.rows[i].size() == 3);
    CHECK(t.rows[i][0] == static_cast<double>(i));
    for (const std::size_t c : {std::size_t{1}, std::size_t{2}}) {
      const double expected = c == 1 ? values[i] : 2.0 * values[i];
      if (std::isnan(expected)) {
        CHECK(std::isnan(t.rows[i][c]));
      } else {
        CHECK(std::bit_cast<std::uint64_t>(t.rows[i][c]) == std::bit_cast<std::uint64_t>(expected));
      }
    }
  }
  CHECK(std::signbit(t.rows[3][1]));  // -0.0 kept its sign
  CHECK(t.column("twice") == 2);
  CHECK(t.values("i").size() == values.size());
  const std::string missing = message_of<std::out_of_range>([&] { (void)t.column("nope"); });
  CHECK(contains(missing, "nope"));
  CHECK(contains(missing, "i, value, twice"));
}

TEST_CASE("repro output: csv row of the wrong size throws naming both counts") {
  temp_dir dir;
  repro::csv_writer w(dir / "rows.csv", {"a", "b", "c"});
  w.row({1.0, 2.0, 3.0});
  const std::string msg = message_of<std::invalid_argument>([&] { w.row({1.0, 2.0}); });
  CHECK(contains(msg, "2 values"));
  CHECK(contains(msg, "3 columns"));
  const std::vector<double> four = {1, 2, 3, 4};
  CHECK(contains(message_of<std::invalid_argument>([&] { w.row(four); }), "4 values"));
  w.close();
  CHECK_THROWS_AS(w.row({1.0, 2.0, 3.0}), std::logic_error);  // after close()
  w.close();                                                  // a second close does nothing
  CHECK(repro::read_csv(dir / "rows.csv").rows.size() == 1);  // the bad rows wrote nothing
}

TEST_CASE("repro output: csv bad column names throw invalid_argument") {
  temp_dir dir;
  const auto path = dir / "bad.csv";
  using cols = std::vector<std::string>;
  CHECK(contains(message_of<std::invalid_argument>([&] { repro::csv_writer(path, cols{"a", ""}); }), "empty"));
  CHECK(contains(message_of<std::invalid_argument>([&] { repro::csv_writer(path, cols{"a,b"}); }), "comma"));
  CHECK(contains(message_of<std::invalid_argument>([&] { repro::csv_writer(path, cols{"say \"hi\""}); }), "quote"));
  CHECK(contains(message_of<std::invalid_argument>([&] { repro::csv_writer(path, cols{"two\nlines"}); }), "newline"));
  CHECK(contains(message_of<std::invalid_argument>([&] { repro::csv_writer(path, cols{"x", "x"}); }), "twice"));
  CHECK_THROWS_AS(repro::csv_writer(path, cols{}), std::invalid_argument);
  CHECK_FALSE(fs::exists(path));  // names are checked before the file is created
}

TEST_CASE("repro output: read_csv reports the line number of malformed input") {
  temp_dir dir;
  const auto path = dir / "malformed.csv";

  write_file(path, "a,b\n1,2\n3\n");
  std::string msg = message_of<std::runtime_error>([&] { (void)repro::read_csv(path); });
  CHECK(contains(msg, "line 3"));
  CHECK(contains(msg, "expected 2 fields, found 1"));
  CHECK(contains(msg, path.string()));

  write_file(path, "a,b\r\n1,2\r\n\r\n3,4\r\n5,x7\r\n");  // CRLF and a blank line are fine; "x7" is not
  msg = message_of<std::runtime_error>([&] { (void)repro::read_csv(path); });
  CHECK(contains(msg, "line 5"));
  CHECK(contains(msg, "\"x7\" is not a number"));

  write_file(path, "a,b\n1,2.5junk\n");
  CHECK(contains(message_of<std::runtime_error>([&] { (void)repro::read_csv(path); }), "line 2"));

  write_file(path, "a,b\n1,\n");
  CHECK(contains(message_of<std::runtime_error>([&] { (void)repro::read_csv(path); }), "line 2: field 2 (b) is empty"));

  write_file(path, "a,b\n1,1e999\n");
  CHECK(contains(message_of<std::runtime_error>([&] { (void)repro::read_csv(path); }), "out of the range"));

  write_file(path, "a,,c\n");
  CHECK(contains(message_of<std::runtime_error>([&] { (void)repro::read_csv(path); }), "line 1"));

  write_file(path, "");
  CHECK(contains(message_of<std::runtime_error>([&] { (void)repro::read_csv(path); }), "line 1: empty file"));

  write_file(path, " x , y \n 1 , -inf \n");  // spaces around names and numbers are tolerated
  const auto t = repro::read_csv(path);
  CHECK(t.columns == std::vector<std::string>{"x", "y"});
  REQUIRE(t.rows.size() == 1);
  CHECK(t.rows[0][1] == -std::numeric_limits<double>::infinity());

  CHECK(contains(message_of<std::runtime_error>([&] { (void)repro::read_csv(dir / "absent.csv"); }), "cannot read"));
}

TEST_CASE("repro output: csv writer to an unwritable path throws") {
  temp_dir dir;
  const auto path = dir / "no_such_dir" / "x.csv";
  const std::string msg = message_of<std::runtime_error>([&] { repro::csv_writer(path, {"a"}); });
  CHECK(msg == "cannot write " + path.string());
  CHECK(contains(message_of<std::runtime_error>([&] { repro::csv_writer(dir.path, {"a"}); }), "cannot write"));

  if (fs::exists("/dev/full")) {  // every write fails there: close() must say so
    MESSAGE("checking write errors with /dev/full");
    repro::csv_writer w("/dev/full", {"a"});
    CHECK(contains(message_of<std::runtime_error>([&] {
                     for (int i = 0; i < 100000; ++i) w.row({1.0 / 3.0});
                     w.close();
                   }),
                   "error writing /dev/full"));
  }
}

// ---------------------------------------------------------------------------------------------
// JSON

TEST_CASE("repro output: json nested document matches the expected text") {
  repro::json_writer j;
  j.begin_object()
      .key("name")
      .value("topk")
      .key("k")
      .value(10)
      .key("ratio")
      .value(0.1)
      .key("big")
      .value(std::uint64_t{18446744073709551615ull})
      .key("neg")
      .value(std::int64_t{-9223372036854775807ll - 1})
      .key("ll")
      .value(42LL)
      .key("ok")
      .value(true)
      .key("none")
      .null()
      .key("losses")
      .begin_array()
      .value(1.5)
      .value(1e300)
      .value(-0.0)
      .end_array()
      .key("empty_array")
      .begin_array()
      .end_array()
      .key("empty_object")
      .begin_object()
      .end_object()
      .key("runs")
      .begin_array()
      .begin_object()
      .member("seed", 1)
      .member("method", std::string("ef_sgd"))
      .end_object()
      .end_array()
      .end_object();
  const std::string expected = R"({
  "name": "topk",
  "k": 10,
  "ratio": 0.1,
  "big": 18446744073709551615,
  "neg": -9223372036854775808,
  "ll": 42,
  "ok": true,
  "none": null,
  "losses": [
    1.5,
    1e+300,
    -0
  ],
  "empty_array": [],
  "empty_object": {},
  "runs": [
    {
      "seed": 1,
      "method": "ef_sgd"
    }
  ]
})";
  CHECK(j.str() == expected);
  CHECK(j.complete());

  temp_dir dir;
  j.write(dir / "summary.json");
  CHECK(read_file(dir / "summary.json") == expected + "\n");
  CHECK(contains(message_of<std::runtime_error>([&] { j.write(dir / "missing" / "s.json"); }), "cannot write"));

  repro::json_writer scalar;  // a top-level scalar is a complete document
  scalar.value(3);
  CHECK(scalar.str() == "3");
}

TEST_CASE("repro output: json escapes strings per RFC 8259") {
  repro::json_writer j;
  j.begin_array()
      .value("say \"hi\"")
      .value("back\\slash")
      .value("line\nbreak\ttab\r")
      .value(std::string_view("ctl\x01\x1f end", 9))
      .value("utf-8: \xc3\xa9")
      .end_array();
  CHECK(j.str() ==
        "[\n"
        "  \"say \\\"hi\\\"\",\n"
        "  \"back\\\\slash\",\n"
        "  \"line\\nbreak\\ttab\\r\",\n"
        "  \"ctl\\u0001\\u001f end\",\n"
        "  \"utf-8: \xc3\xa9\"\n"
        "]");

  repro::json_writer k;  // keys are escaped too
  k.begin_object().key("a\"b").value(1).end_object();
  CHECK(k.str() == "{\n  \"a\\\"b\": 1\n}");
}

TEST_CASE("repro output: json writes NaN and infinities as null") {
  repro::json_writer j;
  j.begin_array()
      .value(std::numeric_limits<double>::quiet_NaN())
      .value(std::numeric_limits<double>::infinity())
      .value(-std::numeric_limits<double>::infinity())
      .value(1.0 / 3.0)
      .end_array();
  CHECK(j.str() == "[\n  null,\n  null,\n  null,\n  0.3333333333333333\n]");
}

TEST_CASE("repro output: json misuse throws logic_error saying what was expected") {
  {
    repro::json_writer j;
    j.begin_object();
    CHECK(contains(message_of<std::logic_error>([&] { j.value(1); }), "expected key()"));
    CHECK(contains(message_of<std::logic_error>([&] { j.end_array(); }), "expected end_object()"));
    j.key("a");
    CHECK(contains(message_of<std::logic_error>([&] { j.key("b"); }), "expected a value for \"a\""));
    CHECK(contains(message_of<std::logic_error>([&] { j.end_object(); }), "expected its value"));
    CHECK(contains(message_of<std::logic_error>([&] { (void)j.str(); }), "incomplete"));
    j.value(1).end_object();
    CHECK(contains(message_of<std::logic_error>([&] { j.value(2); }), "top-level"));
    CHECK(contains(message_of<std::logic_error>([&] { j.begin_array(); }), "top-level"));
    CHECK(contains(message_of<std::logic_error>([&] { j.end_object(); }), "no open object"));
    CHECK(j.str() == "{\n  \"a\": 1\n}");  // the failed calls changed nothing
  }
  {
    repro::json_writer j;
    j.begin_array();
    CHECK(contains(message_of<std::logic_error>([&] { j.key("x"); }), "inside an array"));
    CHECK(contains(message_of<std::logic_error>([&] { j.end_object(); }), "expected end_array()"));
  }
  {
    repro::json_writer j;
    CHECK(contains(message_of<std::logic_error>([&] { (void)j.str(); }), "empty document"));
    CHECK(contains(message_of<std::logic_error>([&] { j.key("x"); }), "outside any object"));
    CHECK_THROWS_AS(j.write(fs::temp_directory_path() / "never_written.json"), std::logic_error);
  }
}

// ---------------------------------------------------------------------------------------------
// progress

TEST_CASE("repro output: progress in plain mode prints a few lines") {
  tmp_file out;
  {
    repro::progress p("train", 1000, out.f, false);
    CHECK_FALSE(p.terminal());
    for (int i = 0; i < 1000; ++i) p.advance();
    CHECK(p.done() == 1000);
    p.finish();
    p.finish();  // a second finish prints nothing more
  }              // nor does the destructor
  const std::string s = contents(out.f);
  MESSAGE("plain output:\n" << s);
  const std::size_t lines = count_char(s, '\n');
  CHECK(lines >= 2);
  CHECK(lines <= 8);
  CHECK(count_char(s, '\r') == 0);
  CHECK(s.starts_with("train: started (0/1000)\n"));
  CHECK(contains(s, "train: 100% (1000/1000), "));
  CHECK(contains(s, "done in "));
  CHECK(s.back() == '\n');
  CHECK(s.find("done") == s.rfind("done"));  // finished once
}

TEST_CASE("repro output: progress in plain mode prints each quarter and the note") {
  tmp_file out;
  {
    repro::progress p("sweep", 1000, out.f, false);
    p.set_note("loss 0.31\n");  // the newline must not break the line
    for (int q = 0; q < 4; ++q) p.advance(250);
  }  // the destructor finishes
  const std::string s = contents(out.f);
  MESSAGE("plain output:\n" << s);
  CHECK(contains(s, "sweep: 25% (250/1000), "));
  CHECK(contains(s, "sweep: 50% (500/1000), "));
  CHECK(contains(s, "sweep: 75% (750/1000), "));
  CHECK(contains(s, "ETA "));
  CHECK(contains(s, "sweep: 100% (1000/1000), "));
  CHECK(contains(s, "done in "));
  CHECK(contains(s, ", loss 0.31 \n"));
  CHECK(count_char(s, '\n') == 5);  // start, three quarters, done
}

TEST_CASE("repro output: progress on a terminal redraws in place") {
  tmp_file out;
  {
    repro::progress p("eval", 1000, out.f, true);
    CHECK(p.terminal());
    for (int i = 0; i < 1000; ++i) p.advance();
    p.set_note("acc 0.9");
    p.finish();
  }
  const std::string s = contents(out.f);
  MESSAGE("terminal output: " << s);
  CHECK(count_char(s, '\r') >= 2);  // the first draw, 100 %, the final line
  CHECK(count_char(s, '\n') == 1);  // one line, ended by finish()
  CHECK(s.back() == '\n');
  CHECK(contains(s, "eval [####################] 100%  1000/1000  "));
  CHECK(contains(s, "eval [--------------------]   0%  0/1000"));
  CHECK(contains(s, "done in "));
  CHECK(contains(s, "  acc 0.9"));
}

TEST_CASE("repro output: progress with total 0 does not divide by zero") {
  for (const bool terminal : {false, true}) {
    CAPTURE(terminal);
    tmp_file out;
    {
      repro::progress p("unknown", 0, out.f, terminal);
      for (int i = 0; i < 100; ++i) p.advance();
      p.finish();
      CHECK(p.done() == 100);
    }
    const std::string s = contents(out.f);
    MESSAGE("total 0 output: " << s);
    CHECK(contains(s, "100"));
    CHECK(contains(s, "done in "));
    CHECK_FALSE(contains(s, "nan"));
    CHECK_FALSE(contains(s, "inf"));
  }
  tmp_file out;
  { repro::progress p("empty", 0, out.f, false); }  // never advanced: still one start and one done line
  CHECK(count_char(contents(out.f), '\n') == 2);
}

TEST_CASE("repro output: progress in a slow loop prints by the clock") {
  using namespace std::chrono_literals;
  for (const bool terminal : {false, true}) {
    CAPTURE(terminal);
    tmp_file out;
    const auto t0 = std::chrono::steady_clock::now();
    {
      repro::progress p("slow", 0, out.f, terminal);
      p.set_plain_every(50ms);
      for (int i = 0; i < 30; ++i) {
        std::this_thread::sleep_for(10ms);
        p.advance();
      }
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const std::string s = contents(out.f);
    MESSAGE("slow loop, " << ms << " ms: " << s);
    if (terminal) {
      // Redrawn as it goes, but at most ten times a second (plus the first and the final line).
      CHECK(count_char(s, '\r') >= 3);
      CHECK(static_cast<double>(count_char(s, '\r')) <= 3.0 + ms / 100.0);  // one of slack
    } else {
      // A line at least every 50 ms (as the items come every 10 ms), besides start and done.
      CHECK(count_char(s, '\n') >= 4);
      CHECK(static_cast<double>(count_char(s, '\n')) <= 3.0 + ms / 50.0);  // one of slack
    }
    CHECK(contains(s, "slow"));
    CHECK(contains(s, "30"));
  }
}

TEST_CASE("repro output: progress formats durations and prints few lines for many items") {
  CHECK(repro::format_duration(0) == "0s");
  CHECK(repro::format_duration(12.3) == "12s");
  CHECK(repro::format_duration(185) == "3:05");
  CHECK(repro::format_duration(3723) == "1:02:03");
  CHECK(repro::format_duration(-1) == "?");
  CHECK(repro::format_duration(std::numeric_limits<double>::infinity()) == "?");

  tmp_file out;
  // (How cheap advance() is belongs in a benchmark, not here: unit tests assert no timings.)
  constexpr std::size_t n = 2'000'000;
  repro::progress p("fast", n, out.f, false);
  for (std::size_t i = 0; i < n; ++i) p.advance();
  p.finish();
  CHECK(p.done() == n);
  CHECK(count_char(contents(out.f), '\n') <= 8);
}

// ---------------------------------------------------------------------------------------------
// plot

TEST_CASE("repro output: plot_png draws bands and log axes or says why not") {
  temp_dir dir;
  const double nan = std::numeric_limits<double>::quiet_NaN();

  repro::series banded{"ef_sgd (min-max over seeds)", {1, 2, 3, 4, 5}, {3, 2, 1.5, 1.2, 1.1}, {}, {}};
  banded.y_low = {2.5, 1.8, 1.3, 1.1, 1.0};
  banded.y_high = {3.5, 2.3, 1.7, 1.4, 1.2};
  const repro::series gappy{"top_k 'it''s'", {1, 10, 100, 1000, 10000, 100000}, {1, 0.1, 0, 0.001, nan, 1e-5}, {}, {}};

  repro::plot_spec linear{"band_plot: loss\nsecond line", "step", "loss", false, false, dir / "band.png"};
  repro::plot_spec logs{"log_plot", "bytes sent", "error", true, true, dir / "log.png"};

  std::string why_linear, why_log;
  const bool ok_linear = repro::plot_png(linear, {banded, gappy}, &why_linear);
  const bool ok_log = repro::plot_png(logs, {banded, gappy}, &why_log);

  // Both scripts are always left behind, with the data inline.
  const std::string band_gp = read_file(dir / "band.gp");
  const std::string log_gp = read_file(dir / "log.gp");
  CHECK(contains(band_gp, "$band0 << EOD\n1 2.5 3.5\n"));
  CHECK(contains(band_gp, "filledcurves"));
  CHECK(contains(band_gp, "transparent"));
  CHECK(contains(band_gp, "noenhanced"));
  CHECK(contains(band_gp, "set output 'band.png'"));
  // Quotes are joined in as "'" (gnuplot's doubled quote '' fails when two quotes follow each other).
  CHECK(contains(band_gp, R"(title 'top_k '."'".'it'."'".''."'".'s'."'".'' noenhanced)"));
  CHECK(contains(band_gp, "$data1 << EOD\n1 1\n10 0.1\n100 0\n1000 0.001\n\n1e+05 1e-05\nEOD"));  // NaN: a gap
  CHECK(contains(log_gp, "set logscale x"));
  CHECK(contains(log_gp, "set logscale y"));
  CHECK(contains(log_gp, "$data1 << EOD\n1 1\n10 0.1\n\n1000 0.001\n\n1e+05 1e-05\nEOD"));  // 0 and NaN: gaps
  CHECK_FALSE(contains(log_gp, "nan"));

  if (repro::have_gnuplot()) {
    MESSAGE("gnuplot found: checking the PNG files");
    CHECK_MESSAGE(ok_linear, why_linear);
    CHECK_MESSAGE(ok_log, why_log);
    for (const char* name : {"band.png", "log.png"}) {
      CAPTURE(name);
      const std::string png = read_file(dir / name);
      REQUIRE(png.size() > 8);
      CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    }
  } else {
    MESSAGE("gnuplot not found: checking that plot_png says so");
    CHECK_FALSE(ok_linear);
    CHECK(contains(why_linear, "gnuplot"));
    CHECK_FALSE(fs::exists(dir / "band.png"));
  }
}

TEST_CASE("repro output: plot_png without gnuplot on the PATH returns false with a reason") {
  temp_dir dir;
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  ::setenv("PATH", dir.path.c_str(), 1);  // an empty directory: no gnuplot there
  std::string why;
  const bool have = repro::have_gnuplot();
  const bool ok = repro::plot_png({"t", "x", "y", false, false, dir / "p.png"}, {{"s", {1, 2}, {3, 4}, {}, {}}}, &why);
  if (old)
    ::setenv("PATH", saved.c_str(), 1);
  else
    ::unsetenv("PATH");
  CHECK_FALSE(have);
  CHECK_FALSE(ok);
  CHECK(contains(why, "gnuplot not found"));
  CHECK(fs::exists(dir / "p.gp"));  // the script is left for later
  CHECK_FALSE(fs::exists(dir / "p.png"));
}

TEST_CASE("repro output: plot_png rejects bad input") {
  temp_dir dir;
  const repro::plot_spec spec{"t", "x", "y", true, false, dir / "bad.png"};
  CHECK(contains(message_of<std::invalid_argument>([&] {
                   repro::plot_png(spec, {{"short", {1, 2, 3}, {1, 2}, {}, {}}});
                 }),
                 "3 x values but 2 y values"));
  CHECK(contains(message_of<std::invalid_argument>([&] {
                   repro::plot_png(spec, {{"band", {1, 2}, {1, 2}, {0.5}, {1.5, 2.5}}});
                 }),
                 "band"));
  CHECK_THROWS_AS(repro::plot_png(spec, {}), std::invalid_argument);
  CHECK_THROWS_AS(repro::plot_png({"t", "x", "y", false, false, {}}, {{"s", {1}, {1}, {}, {}}}), std::invalid_argument);
  CHECK(contains(message_of<std::runtime_error>([&] {
                   repro::plot_png({"t", "x", "y", false, false, dir / "missing" / "p.png"}, {{"s", {1}, {1}, {}, {}}});
                 }),
                 "cannot write"));

  // Every point is off the log axis: nothing to plot.
  std::string why;
  CHECK_FALSE(repro::plot_png(spec, {{"neg", {-1, 0}, {1, 2}, {}, {}}}, &why));
  CHECK(contains(why, "nothing to plot"));
}
