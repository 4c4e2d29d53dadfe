// gradcomp demo: compress a real gradient with every compressor, then train with error
// feedback and plot training loss against bytes sent.
//
//   1. Loads Fashion-MNIST (Debian package dataset-fashion-mnist).
//   2. Builds a 784-128-10 MLP (ReLU, softmax cross-entropy, He init, fixed seed) and takes
//      the gradient of all ~100k parameters on 256 training images: the "real gradient".
//   3. Compresses it with every gradcomp compressor and prints what each sends, its error and
//      whether the bound of its category holds on this gradient.
//   4. Trains the MLP with single-worker SGD where every step goes through
//      gc::error_feedback<C> for a few compressors, and compares loss, bytes and accuracy.
//   5. Writes table.txt, table.csv, training.csv and loss_vs_bytes.png (via gnuplot) to --out.
//
// Usage: gradcomp_demo [--data DIR] [--out DIR] [--steps N] [--help]
#include <gradcomp/gradcomp.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>  // isatty

#include "fashion_mnist.hpp"
#include "mlp.hpp"

namespace gc = gradcomp;
namespace fs = std::filesystem;
using examples::gather_batch;
using examples::mlp;
using examples::test_accuracy;

namespace {

// ---------------------------------------------------------------------------------------
// Options

struct options {
  fs::path data{fashion_mnist::debian_dir};
  fs::path out{"out/demo"};
  // 1.6 epochs of batches of 64: long enough for the curves to separate clearly; the five
  // training runs take ~20 s on one core in a Release build.
  std::size_t steps = 1500;
};

void print_usage(std::ostream& os) {
  os << "Usage: gradcomp_demo [--data DIR] [--out DIR] [--steps N] [--help]\n"
        "\n"
        "Compresses a real Fashion-MNIST MLP gradient with every gradcomp compressor, prints a\n"
        "table, then trains the MLP with error feedback and plots training loss vs bytes sent.\n"
        "\n"
        "  --data DIR   Fashion-MNIST IDX files, plain or .gz (default "
     << fashion_mnist::debian_dir
     << ")\n"
        "  --out DIR    where table.txt/.csv, training.csv and loss_vs_bytes.png go (default out/demo)\n"
        "  --steps N    SGD steps per compressor in the training part (default 1500)\n"
        "  --help       this text\n";
}

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "gradcomp_demo: " << message << "\n\n";
  print_usage(std::cerr);
  std::exit(2);
}

options parse_options(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_usage(std::cout);
      std::exit(0);
    }
    // Accept both "--name value" and "--name=value".
    std::string_view name = arg, value;
    bool has_value = false;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    if (name != "--data" && name != "--out" && name != "--steps")
      usage_error("unknown option '" + std::string(arg) + "'");
    if (!has_value) {
      if (i + 1 >= argc) usage_error(std::string(name) + " needs a value");
      value = argv[++i];
    }
    if (name == "--data") {
      opt.data = std::string(value);
    } else if (name == "--out") {
      opt.out = std::string(value);
    } else {
      std::size_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc{} || end != value.data() + value.size() || n == 0 || n > 10'000'000)
        usage_error("--steps must be an integer in [1, 10000000] (got '" + std::string(value) + "')");
      opt.steps = n;
    }
  }
  return opt;
}

// ---------------------------------------------------------------------------------------
// Small formatting helpers (no fmt dependency)

std::string format(const char* spec, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

std::string megabytes(double bytes) { return format("%.2f", bytes / 1e6); }

/// Prints rows as columns; the first row is the header. Columns listed in right_aligned are
/// numbers and are right-aligned. ASCII only, so byte length is display width.
void print_columns(std::ostream& os, const std::vector<std::vector<std::string>>& rows,
                   const std::vector<bool>& right_aligned) {
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& r : rows)
    for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  auto print_row = [&](const std::vector<std::string>& r) {
    std::string line = " ";
    for (std::size_t c = 0; c < r.size(); ++c) {
      const std::string pad(width[c] - r[c].size(), ' ');
      line += ' ';
      line += right_aligned[c] ? pad + r[c] : r[c] + pad;
      line += ' ';
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << '\n';
  };
  print_row(rows.front());
  std::size_t total = 1;
  for (const std::size_t w : width) total += w + 2;
  os << "  " << std::string(total - 2, '-') << '\n';
  for (std::size_t i = 1; i < rows.size(); ++i) print_row(rows[i]);
}

/// A CSV field, quoted when it needs to be.
std::string csv(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (const char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double squared_norm(std::span<const float> x) {
  double s = 0.0;
  for (const float v : x) s += static_cast<double>(v) * static_cast<double>(v);
  return s;
}

// ---------------------------------------------------------------------------------------
// Part 1: the table

struct table_row {
  std::string name;
  std::string category;  // "absolute", "contractive delta=...", ...
  std::size_t sent = 0;
  double density = 0;
  std::size_t wire = 0;
  double ratio = 0;      // dense float32 bytes / wire bytes
  double rel_error = 0;  // ||g - C(g)||^2 / ||g||^2
  double rel_bound = 0;  // the category's bound, divided by ||g||^2 like rel_error
  std::string check;     // ok, VIOLATED, or why it is not checked
};

/// Compresses g with c and measures the result. deterministic: whether the category's bound
/// must hold for this one draw (for random compressors it holds in expectation only).
template <class C>
table_row measure(std::string name, C c, std::span<const float> g, bool deterministic) {
  using payload = gc::payload_t<C, float>;
  const std::size_t d = g.size();
  payload m;
  gc::compress(gc::exec::seq, c, g, m);

  // What the receiver reconstructs, and the squared error, in double so that the check
  // does not depend on float summation order.
  std::vector<float> decoded(d, 0.0f);
  gc::decompress_add(m, decoded);
  double err = 0.0;
  for (std::size_t i = 0; i < d; ++i) {
    const double diff = static_cast<double>(g[i]) - static_cast<double>(decoded[i]);
    err += diff * diff;
  }
  const double norm2 = squared_norm(g);

  // Encode for real, so the byte count in the table is what would cross the wire.
  const std::vector<std::byte> wire = gc::encode(m);
  if (wire.size() != gc::wire_bytes(m))
    throw std::logic_error(name + ": encode wrote " + std::to_string(wire.size()) + " bytes, wire_bytes says " +
                           std::to_string(gc::wire_bytes(m)));

  table_row r;
  r.name = std::move(name);
  r.sent = gc::sent_elements(m);
  r.density = static_cast<double>(r.sent) / static_cast<double>(d);
  r.wire = wire.size();
  r.ratio = 4.0 * static_cast<double>(d) / static_cast<double>(r.wire);
  r.rel_error = err / norm2;

  // One category per row: the strongest guarantee the compressor declares. identity declares
  // all three with a zero error.
  double abs_bound = 0.0;  // in the units of err
  if constexpr (gc::absolute_compressor<C, float> && gc::contractive_compressor<C, float> &&
                gc::unbiased_compressor<C, float>) {
    r.category = "exact (all categories)";
    abs_bound = c.absolute_bound(d);
  } else if constexpr (gc::absolute_compressor<C, float>) {
    abs_bound = c.absolute_bound(d);
    r.category = "absolute bound=" + format("%.3g", abs_bound);
  } else if constexpr (gc::contractive_compressor<C, float>) {
    abs_bound = (1.0 - c.delta(d)) * norm2;
    r.category = "contractive delta=" + format("%.3g", c.delta(d));
  } else if constexpr (gc::unbiased_compressor<C, float>) {
    abs_bound = c.omega(d) * norm2;
    r.category = "unbiased omega=" + format("%.3g", c.omega(d));
  } else {
    static_assert(!sizeof(C), "every gradcomp compressor declares a category");
  }
  r.rel_bound = abs_bound / norm2;
  r.check = deterministic ? (err <= abs_bound ? "ok" : "VIOLATED") : "random: E only";
  return r;
}

std::vector<table_row> compress_table(std::span<const float> g, std::size_t k, double lambda_k, double spacing) {
  const std::string ks = std::to_string(k);
  std::vector<table_row> rows;
  rows.push_back(measure("identity", gc::identity{}, g, true));
  rows.push_back(measure("top_k k=" + ks, gc::top_k{.k = k}, g, true));
  rows.push_back(measure("hard_threshold lambda=" + format("%.3g", lambda_k) + " (k-th |g|)",
                         gc::hard_threshold{.lambda = lambda_k}, g, true));
  rows.push_back(measure("hard_threshold matching_top_k(" + ks + ")", gc::hard_threshold::matching_top_k(k), g, true));
  rows.push_back(measure("random_k k=" + ks, gc::random_k{.k = k, .seed = 1}, g, false));
  rows.push_back(measure("unbiased_random_k k=" + ks, gc::unbiased_random_k{.k = k, .seed = 1}, g, false));
  rows.push_back(measure("scaled_sign", gc::scaled_sign{}, g, true));
  rows.push_back(measure("blockwise_sign B=256", gc::blockwise_sign{.block_size = 256}, g, true));
  rows.push_back(measure("qsgd s=4", gc::qsgd{.s = 4, .seed = 1}, g, false));
  rows.push_back(measure("qsgd s=16", gc::qsgd{.s = 16, .seed = 1}, g, false));
  rows.push_back(measure("grid_rounding q=max|g|/127", gc::grid_rounding{.spacing = spacing}, g, true));
  return rows;
}

void print_table(std::ostream& os, const std::vector<table_row>& rows) {
  std::vector<std::vector<std::string>> cells{
      {"compressor", "category", "sent", "density", "wire bytes", "ratio", "rel. error", "rel. bound", "check"}};
  for (const auto& r : rows)
    cells.push_back({r.name, r.category, std::to_string(r.sent), format("%.4f", r.density), std::to_string(r.wire),
                     format("%.1fx", r.ratio), format("%.4g", r.rel_error), format("%.4g", r.rel_bound), r.check});
  print_columns(os, cells, {false, false, true, true, true, true, true, true, false});
}

void write_table_csv(const fs::path& file, const std::vector<table_row>& rows) {
  std::ofstream f(file);
  f << "compressor,category,sent_elements,density,wire_bytes,compression_ratio,relative_error,relative_bound,check\n";
  f.precision(10);
  for (const auto& r : rows)
    f << csv(r.name) << ',' << csv(r.category) << ',' << r.sent << ',' << r.density << ',' << r.wire << ',' << r.ratio
      << ',' << r.rel_error << ',' << r.rel_bound << ',' << csv(r.check) << '\n';
  if (!f) throw std::runtime_error("writing " + file.string() + " failed");
}

// ---------------------------------------------------------------------------------------
// Part 2: error-feedback training

struct training_setup {
  const fashion_mnist::labelled_images& train;
  const fashion_mnist::labelled_images& test;
  std::span<const float> initial_params;
  std::vector<std::uint32_t> schedule;  // steps * batch image ids, shared by every method
  std::size_t steps;
  std::size_t batch;
  float lr;
  bool tty;
};

struct history_point {
  std::size_t step;
  double loss_ma;  // moving average of the training loss
  std::uint64_t bytes;
  double total_error;
};

struct training_result {
  std::string method;
  std::vector<history_point> history;
  double accuracy = 0;
  double density = 0;
  double seconds = 0;
  std::string failure;  // why training stopped early, if it did
};

/// Single-worker EF-SGD: p = e + lr*g; m = C(p); e = p - decode(m); params -= decode(m).
template <class C>
training_result train_with_feedback(std::string method, C compressor, const training_setup& s) {
  const auto t0 = std::chrono::steady_clock::now();
  training_result res;
  res.method = std::move(method);
  mlp net;
  std::vector<float> params(s.initial_params.begin(), s.initial_params.end());
  std::vector<float> grad(params.size()), x;
  std::vector<std::uint8_t> y;
  gc::error_feedback ef{compressor, params.size()};

  // Bias-corrected exponential moving average, so that early values are not pulled to 0.
  constexpr double beta = 0.95;
  double ema = 0.0, weight = 0.0;
  const std::size_t report_every = std::max<std::size_t>(1, s.steps / 5);
  const std::size_t redraw_every = std::max<std::size_t>(1, s.steps / 100);

  for (std::size_t t = 1; t <= s.steps; ++t) {
    gather_batch(s.train, std::span<const std::uint32_t>(s.schedule).subspan((t - 1) * s.batch, s.batch), x, y);
    const double loss = net.loss_and_gradient(params, x, y, grad);
    if (!std::isfinite(loss)) {
      res.failure = "the loss became " + std::to_string(loss) + " at step " + std::to_string(t);
      break;
    }
    try {
      const auto& m = ef.compress(gc::exec::seq, std::span<const float>(grad), s.lr);
      gc::decompress_add(m, params, -1.0f);
    } catch (const gc::error& e) {  // e.g. qsgd rejecting an overflowed residual
      res.failure = std::string(e.what()) + " at step " + std::to_string(t);
      break;
    }
    ema = beta * ema + (1.0 - beta) * loss;
    weight = beta * weight + (1.0 - beta);
    const auto& mt = ef.metrics();
    res.history.push_back({t, ema / weight, mt.wire_bytes, mt.total_error});

    const bool report = t % report_every == 0 || t == s.steps;
    if (report || (s.tty && t % redraw_every == 0)) {
      char line[160];
      std::snprintf(line, sizeof line, "  %-16s step %6zu/%zu  loss %.4f  sent %9.2f MB  %5.1f s", res.method.c_str(),
                    t, s.steps, ema / weight, static_cast<double>(mt.wire_bytes) / 1e6, seconds_since(t0));
      // On a terminal, redraw one line; in a log, print a line every steps/5.
      if (s.tty)
        std::cout << '\r' << line << (t == s.steps ? "\n" : "") << std::flush;
      else if (report)
        std::cout << line << '\n' << std::flush;
    }
  }
  if (!res.failure.empty())
    std::cout << (s.tty ? "\n" : "") << "  " << res.method << ": stopped, " << res.failure << '\n';
  res.accuracy = test_accuracy(net, params, s.test);
  res.density = ef.average_density();
  res.seconds = seconds_since(t0);
  return res;
}

void write_training_csv(const fs::path& file, const std::vector<training_result>& results) {
  std::ofstream f(file);
  f << "method,step,train_loss_ma,wire_bytes,ef_total_error\n";
  f.precision(8);
  for (const auto& r : results)
    for (const auto& h : r.history)
      f << csv(r.method) << ',' << h.step << ',' << h.loss_ma << ',' << h.bytes << ',' << h.total_error << '\n';
  if (!f) throw std::runtime_error("writing " + file.string() + " failed");
}

void print_training_summary(const std::vector<training_result>& results) {
  std::vector<std::vector<std::string>> cells{
      {"method", "final loss (MA)", "test accuracy", "MB sent", "avg density", "EF total error", "time"}};
  for (const auto& r : results) {
    const bool any = !r.history.empty();
    std::string loss = any ? format("%.4f", r.history.back().loss_ma) : "-";
    if (!r.failure.empty()) loss = "diverged";
    cells.push_back({r.method, loss, format("%.2f%%", 100.0 * r.accuracy),
                     any ? megabytes(static_cast<double>(r.history.back().bytes)) : "0", format("%.4f", r.density),
                     any ? format("%.4g", r.history.back().total_error) : "-",
                     format("%.1f s", r.seconds) + (r.failure.empty() ? "" : " (stopped)")});
  }
  print_columns(std::cout, cells, {false, true, true, true, true, true, true});
}

// ---------------------------------------------------------------------------------------
// The plot

/// Writes a self-contained gnuplot script (data inline) and runs gnuplot on it. Returns
/// false, after saying why, when gnuplot is missing or fails; the demo goes on without it.
bool plot_loss_vs_bytes(const fs::path& script, const fs::path& png, const std::vector<training_result>& results,
                        const std::string& subtitle) {
  // Cap the y axis a little above the common starting loss, so that a run that diverges
  // (its loss shoots up) does not flatten every other curve.
  double y_max = 0.0;
  for (const auto& r : results)
    if (!r.history.empty() && std::isfinite(r.history.front().loss_ma))
      y_max = std::max(y_max, r.history.front().loss_ma);
  y_max = y_max > 0.0 ? 1.05 * y_max : 3.0;

  auto write_script = [&](const char* terminal) {
    std::ofstream f(script);
    f << "# Training loss vs megabytes sent; written by gradcomp_demo. Rerun: gnuplot " << script.filename().string()
      << "\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
      f << "$m" << i << " << EOD\n";
      for (const auto& h : results[i].history) f << static_cast<double>(h.bytes) / 1e6 << ' ' << h.loss_ma << '\n';
      f << "EOD\n";
    }
    f << "set terminal " << terminal << " size 1100,700 font ',11'\n"
      << "set output '" << png.filename().string() << "'\n"
      << "set title \"Error-feedback SGD on Fashion-MNIST: training loss vs bytes sent\\n{/*0.85 " << subtitle
      << "}\"\n"
      << "set xlabel 'MB sent by the worker (cumulative, log scale)'\n"
      << "set ylabel 'training loss (moving average)'\n"
      << "set logscale x\n"
      << "set yrange [0:" << y_max << "]\n"
      << "set format x '10^{%L}'\n"
      << "set grid xtics mxtics ytics\n"
      << "set key top right box opaque\n"
      << "plot ";
    for (std::size_t i = 0; i < results.size(); ++i)
      f << (i ? ", \\\n     " : "") << "$m" << i << " using 1:2 with lines lw 2 title '" << results[i].method
        << "' noenhanced";
    f << "\n";
    return static_cast<bool>(f);
  };

  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::cout << "gnuplot not found: skipping the plot (apt-get install gnuplot-nox)\n";
    return false;
  }
  // gnuplot runs in the output directory so that the script's relative paths work.
  const std::string run = "cd " + fashion_mnist::detail::shell_quote(script.parent_path().string()) + " && gnuplot " +
                          fashion_mnist::detail::shell_quote(script.filename().string());
  // pngcairo draws antialiased lines; builds without cairo only have png.
  for (const char* terminal : {"pngcairo enhanced", "png enhanced"}) {
    if (!write_script(terminal)) break;
    if (std::system(run.c_str()) == 0) return true;
  }
  std::cout << "gnuplot failed: no plot (script kept at " << script.string() << ")\n";
  return false;
}

// ---------------------------------------------------------------------------------------

int run(const options& opt) {
  const auto t_start = std::chrono::steady_clock::now();
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  // Before any work, so that an unwritable --out fails in a second, not after training.
  fs::create_directories(opt.out);

  // Data. A missing file gets its own message: it is a setup problem, not a bug.
  fashion_mnist::labelled_images train, test;
  try {
    train = fashion_mnist::load_split(opt.data, "train");
    test = fashion_mnist::load_split(opt.data, "t10k");
  } catch (const fashion_mnist::missing_data& e) {
    std::cerr << "gradcomp_demo: Fashion-MNIST not found: " << e.what() << "\n"
              << "  Install it with `apt-get install " << fashion_mnist::debian_package
              << "` (scripts/demo.sh does), or point --data at a\n"
                 "  directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte\n"
                 "  and t10k-labels-idx1-ubyte (each may be .gz).\n";
    return 1;
  }
  if (train.x.pixels_per_image() != mlp::in || test.x.pixels_per_image() != mlp::in)
    throw std::runtime_error("expected 28x28 images, got " + std::to_string(train.x.rows) + "x" +
                             std::to_string(train.x.cols));
  std::cout << "Fashion-MNIST from " << opt.data.string() << ": " << train.size() << " training and " << test.size()
            << " test images (" << format("%.1f", seconds_since(t_start)) << " s to load)\n\n";

  // The real gradient: all layers of the freshly initialised MLP, flattened, on 256 images.
  mlp net;
  const std::vector<float> params0 = mlp::he_init(20240607);
  const std::size_t d = params0.size();
  std::vector<float> g(d), x;
  std::vector<std::uint8_t> y;
  std::vector<std::uint32_t> first(256);
  std::iota(first.begin(), first.end(), 0u);
  gather_batch(train, first, x, y);
  const double loss0 = net.loss_and_gradient(params0, x, y, g);

  const std::size_t k = std::max<std::size_t>(1, (d + 50) / 100);  // 1% of d
  // The magnitude of the k-th largest entry: a hard threshold that sends at least k entries
  // (more only on ties) of this gradient, the same volume as top_k.
  std::vector<float> mags(d);
  std::transform(g.begin(), g.end(), mags.begin(), [](float v) { return std::fabs(v); });
  std::nth_element(mags.begin(), mags.begin() + static_cast<std::ptrdiff_t>(k - 1), mags.end(), std::greater<>{});
  const double lambda_k = mags[k - 1];
  const double max_abs = *std::max_element(mags.begin(), mags.end());

  std::cout << "Real gradient: MLP 784-128-10, d = " << d << " parameters, batch of 256 training images, loss "
            << format("%.4f", loss0) << "\n"
            << "  ||g|| = " << format("%.4g", std::sqrt(squared_norm(g))) << ", max|g| = " << format("%.4g", max_abs)
            << ", k = 1% of d = " << k << ", dense float32 = " << 4 * d << " bytes\n"
            << "  rel. error = ||g - C(g)||^2 / ||g||^2; rel. bound = the category's bound on it (1 - delta,\n"
            << "  omega, or absolute bound / ||g||^2); 'check' tests it for deterministic compressors.\n\n";

  const auto rows = compress_table(g, k, lambda_k, max_abs / 127.0);
  print_table(std::cout, rows);

  // Training. The same initial parameters and the same batches for every method.
  constexpr std::size_t batch = 64;
  constexpr float lr = 0.1f;
  training_setup setup{.train = train,
                       .test = test,
                       .initial_params = params0,
                       .schedule = {},
                       .steps = opt.steps,
                       .batch = batch,
                       .lr = lr,
                       .tty = tty};
  {
    std::mt19937_64 rng(7);
    std::vector<std::uint32_t> perm(train.size());
    std::iota(perm.begin(), perm.end(), 0u);
    while (setup.schedule.size() < opt.steps * batch) {  // one fresh shuffle per epoch
      std::shuffle(perm.begin(), perm.end(), rng);
      setup.schedule.insert(setup.schedule.end(), perm.begin(), perm.end());
    }
  }
  // EF compresses p = e + lr*g, so the threshold that sends ~1% of the first step is lr times
  // the table's k-th magnitude. Later steps send whatever the residual pushes over it.
  const double lambda_train = static_cast<double>(lr) * lambda_k;
  // Error feedback keeps the residual bounded only if E||p - C(p)||^2 < ||p||^2. QSGD is
  // unbiased, not contractive: with s = 4 or 16 its relative error on this gradient is far
  // above 1 (see the table), so e grows geometrically and training blows up within ~100
  // steps. It falls roughly as sqrt(d)/s; s = 256 brings it below 1.
  constexpr std::uint32_t qsgd_levels = 256;

  std::cout << "\nError-feedback SGD, 1 worker: p = e + lr*g; m = C(p); e = p - decode(m); params -= decode(m)\n"
            << "  lr " << lr << ", batch " << batch << ", " << opt.steps << " steps ("
            << format("%.2f", static_cast<double>(opt.steps * batch) / static_cast<double>(train.size()))
            << " epochs), same initialisation and batches for every method\n"
            << "  hard_threshold lambda = lr * (k-th |g| of the table) = " << format("%.3g", lambda_train) << "\n"
            << "  qsgd s = " << qsgd_levels
            << ": EF needs a relative error < 1, and s = 4 or 16 give far more (table)\n\n";

  std::vector<training_result> results;
  results.push_back(train_with_feedback("identity", gc::identity{}, setup));
  results.push_back(train_with_feedback("top_k 1%", gc::top_k{.k = k}, setup));
  results.push_back(train_with_feedback("hard_threshold", gc::hard_threshold{.lambda = lambda_train}, setup));
  results.push_back(train_with_feedback("scaled_sign", gc::scaled_sign{}, setup));
  results.push_back(train_with_feedback("qsgd s=256", gc::qsgd{.s = qsgd_levels, .seed = 1}, setup));

  std::cout << "\n";
  print_training_summary(results);

  // Outputs (the directory was created at the start).
  const fs::path table_txt = opt.out / "table.txt", table_csv = opt.out / "table.csv",
                 training_csv = opt.out / "training.csv", script = opt.out / "loss_vs_bytes.gp",
                 png = opt.out / "loss_vs_bytes.png";
  {
    std::ofstream f(table_txt);
    print_table(f, rows);
    if (!f) throw std::runtime_error("writing " + table_txt.string() + " failed");
  }
  write_table_csv(table_csv, rows);
  write_training_csv(training_csv, results);
  std::cout << "\n";
  const std::string subtitle = "MLP 784-128-10, d = " + std::to_string(d) + ", SGD lr " + format("%g", lr) +
                               ", batch " + std::to_string(batch) + ", " + std::to_string(opt.steps) + " steps";
  const bool plotted = plot_loss_vs_bytes(fs::absolute(script), fs::absolute(png), results, subtitle);

  std::cout << "Wrote\n  " << table_txt.string() << "\n  " << table_csv.string() << "\n  " << training_csv.string()
            << "\n";
  if (plotted) std::cout << "  " << png.string() << "  (gnuplot script: " << script.string() << ")\n";
  std::cout << "Total time " << format("%.1f", seconds_since(t_start)) << " s\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse_options(argc, argv);
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::cerr << "gradcomp_demo: " << e.what() << '\n';
    return 1;
  }
}
