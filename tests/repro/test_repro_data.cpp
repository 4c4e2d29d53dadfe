// Tests for apps/reproduce/dataset.hpp (LIBSVM, Fashion-MNIST tasks) and logistic.hpp
// (logistic regression, smoothness constant, Newton-CG minimiser).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>  // getpid, for unique temporary file names

#include "dataset.hpp"
#include "logistic.hpp"

namespace {

using repro::binary_dataset;
using repro::csr_matrix;
using repro::data_error;
using repro::logistic_regression;

binary_dataset parse_with(const std::string& text, const repro::libsvm_options& opt) {
  std::istringstream in(text);
  return repro::parse_libsvm(in, "t", opt);
}

binary_dataset parse(const std::string& text, std::size_t dim = 0) { return parse_with(text, {.dim = dim}); }

/// what() of the data_error that parsing text throws, or a marker that fails every check.
std::string parse_error_with(const std::string& text, const repro::libsvm_options& opt) {
  try {
    parse_with(text, opt);
  } catch (const data_error& e) {
    return e.what();
  }
  return "<no data_error thrown>";
}

std::string parse_error(const std::string& text, std::size_t dim = 0) { return parse_error_with(text, {.dim = dim}); }

/// Whether s is safe on a terminal: printable ASCII only.
bool printable(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// A data set from dense rows (zeros not stored).
binary_dataset from_dense(const std::vector<std::vector<double>>& rows, std::vector<double> y) {
  binary_dataset d;
  d.name = "dense";
  d.a.rows = rows.size();
  d.a.cols = rows.empty() ? 0 : rows[0].size();
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i)
      if (row[i] != 0.0) {
        d.a.col.push_back(static_cast<std::uint32_t>(i));
        d.a.val.push_back(row[i]);
      }
    d.a.row_ptr.push_back(d.a.col.size());
  }
  d.y = std::move(y);
  return d;
}

/// m x d random data, about a quarter of the entries zero, random labels with both classes.
binary_dataset random_dataset(std::size_t m, std::size_t d, unsigned seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<std::vector<double>> rows(m, std::vector<double>(d));
  std::vector<double> y(m);
  for (std::size_t j = 0; j < m; ++j) {
    for (double& v : rows[j]) v = u(rng) < -0.5 ? 0.0 : scale * u(rng);
    y[j] = (j % 2 == 0) == (u(rng) < 0.6) ? 1.0 : -1.0;
  }
  y[0] = 1.0;
  y[1] = -1.0;
  return from_dense(rows, y);
}

std::vector<double> random_vector(std::size_t d, unsigned seed, double scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-scale, scale);
  std::vector<double> v(d);
  for (double& x : v) x = u(rng);
  return v;
}

double distance(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

double norm(const std::vector<double>& a) { return distance(a, std::vector<double>(a.size(), 0.0)); }

/// Largest eigenvalue of a symmetric matrix by cyclic Jacobi rotations (independent of the
/// power iteration under test).
double largest_eigenvalue(std::vector<std::vector<double>> s) {
  const std::size_t n = s.size();
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0;
    for (std::size_t p = 0; p < n; ++p)
      for (std::size_t q = p + 1; q < n; ++q) off += s[p][q] * s[p][q];
    if (off < 1e-30) break;
    for (std::size_t p = 0; p < n; ++p)
      for (std::size_t q = p + 1; q < n; ++q) {
        if (s[p][q] == 0.0) continue;
        const double theta = (s[q][q] - s[p][p]) / (2.0 * s[p][q]);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), sn = t * c;
        for (std::size_t k = 0; k < n; ++k) {  // S <- S J
          const double skp = s[k][p], skq = s[k][q];
          s[k][p] = c * skp - sn * skq;
          s[k][q] = sn * skp + c * skq;
        }
        for (std::size_t k = 0; k < n; ++k) {  // S <- J^T S
          const double spk = s[p][k], sqk = s[q][k];
          s[p][k] = c * spk - sn * sqk;
          s[q][k] = sn * spk + c * sqk;
        }
      }
  }
  double best = s[0][0];
  for (std::size_t i = 1; i < n; ++i) best = std::max(best, s[i][i]);
  return best;
}

std::filesystem::path temp_file(const std::string& stem) {
  return std::filesystem::temp_directory_path() / (stem + "_" + std::to_string(::getpid()) + ".libsvm");
}

}  // namespace

// ----------------------------------------------------------------------------- LIBSVM

TEST_CASE("repro data: LIBSVM text parses to the exact CSR matrix and labels") {
  const std::string text =
      "# a header comment\n"
      "+1 1:0.5 3:-2   # trailing comment\n"
      "\n"
      "   \t\n"
      "-1 2:1e-3\n"
      "-1\n"
      "+1 1:1 2:2 3:3\n";
  const binary_dataset d = parse(text);
  CHECK(d.name == "t");
  CHECK(d.size() == 4);
  CHECK(d.dim() == 3);
  CHECK(d.a.rows == 4);
  CHECK(d.a.cols == 3);
  CHECK(d.a.nnz() == 6);
  CHECK(d.a.row_ptr == std::vector<std::size_t>{0, 2, 3, 3, 6});
  CHECK(d.a.col == std::vector<std::uint32_t>{0, 2, 1, 0, 1, 2});
  CHECK(d.a.val == std::vector<double>{0.5, -2.0, 1e-3, 1.0, 2.0, 3.0});
  CHECK(d.y == std::vector<double>{1, -1, -1, 1});
  CHECK(d.a.cols_of(2).empty());
  CHECK(d.a.values_of(3).size() == 3);
  CHECK(d.a.values_of(3)[2] == 3.0);

  const std::vector<double> x{1.0, 10.0, 100.0};
  CHECK(d.a.dot_row(0, x) == doctest::Approx(0.5 - 200.0));
  std::vector<double> acc(3, 1.0);
  d.a.add_row(3, 2.0, acc);
  CHECK(acc == std::vector<double>{3.0, 5.0, 7.0});

  SUBCASE("an explicit dim larger than the largest index") { CHECK(parse(text, 7).dim() == 7); }
  SUBCASE("an explicit dim equal to the largest index") { CHECK(parse(text, 3).dim() == 3); }
}

TEST_CASE("repro data: LIBSVM labels -1/+1 and 0/1 are accepted, others need a positive label") {
  CHECK(parse("0 1:1\n1 1:2\n0 2:1\n").y == std::vector<double>{-1, 1, -1});
  CHECK(parse("-1 1:1\n+1 1:2\n").y == std::vector<double>{-1, 1});
  CHECK(parse("1.0 1:1\n-1e0 1:2\n").y == std::vector<double>{1, -1});
  CHECK(parse("1 1:1\r\n0 2:1\r\n").a.col == std::vector<std::uint32_t>{0, 1});  // CRLF line ends
  {
    const binary_dataset d = parse("0 1:1\n1 1:2\n");
    CHECK(d.positive_label == 1);
    CHECK(d.negative_label == 0);
  }

  // Any other pair is an error that lists the labels found and where; the option chooses.
  const std::string text = "2 1:1\n1 1:2\n2.0 1:3\n";
  CHECK(parse_error(text) ==
        "t: labels 2 (line 1) and 1 (line 2): expected -1 and +1, or 0 and 1; --positive-label L makes label L +1 "
        "and the other -1");
  CHECK(parse_error("-1 1:1\n\n0 1:1\n") ==
        "t: labels -1 (line 1) and 0 (line 3): expected -1 and +1, or 0 and 1; --positive-label L makes label L +1 "
        "and the other -1");
  CHECK(parse_error("3 1:1\n7 1:1\n").rfind("t: labels 3 (line 1) and 7 (line 2): expected", 0) == 0);
  {
    const binary_dataset d = parse_with(text, {.positive_label = 2.0});
    CHECK(d.y == std::vector<double>{1, -1, 1});
    CHECK(d.positive_label == 2);
    CHECK(d.negative_label == 1);
  }
  CHECK(parse_with(text, {.positive_label = 1.0}).y == std::vector<double>{-1, 1, -1});
  CHECK(parse_with("0 1:1\n1 1:2\n", {.positive_label = 0.0}).y == std::vector<double>{1, -1});
  CHECK(parse_with("-1 1:1\n+1 1:2\n", {.positive_label = -1.0}).y == std::vector<double>{1, -1});
  CHECK(parse_error_with(text, {.positive_label = 3.0}) ==
        "t: the positive label 3 (--positive-label) is not one of the labels 2 (line 1) and 1 (line 2)");
  CHECK(parse_error_with("1 1:1\n", {.positive_label = 1.0}) == "t: all samples have label 1; need two classes");
}

TEST_CASE("repro data: LIBSVM indices up to the dimension limit, and a clear error above it") {
  CHECK(repro::default_max_dim == 16777216u);
  CHECK(parse("1 16777216:1\n0\n").dim() == 16777216u);  // the default limit itself
  const std::string message = parse_error("1 1:1\n0 2:1 4294967295:1\n");
  INFO(message);
  CHECK(message ==
        "t:2: index 4294967295 implies a dimension of 4294967295 features: the model, every worker's gradient and "
        "its error-feedback residual are dense vectors of that many doubles, 34.4 GB each; the limit is 16777216 "
        "features (--max-dim raises it)");
  CHECK(parse_error("1 16777217:1\n0\n").rfind("t:1: index 16777217 implies a dimension of 16777217 features", 0) == 0);
  CHECK(contains(parse_error("1 16777217:1\n0\n"), "134 MB each"));
  // The limit is an option: the largest index a u32 column holds, when asked for.
  CHECK(parse_with("1 4294967295:1\n0\n", {.max_dim = 4294967295u}).dim() == 4294967295u);
  CHECK(parse_error_with("1 11:1\n0\n", {.max_dim = 10}).rfind("t:1: index 11 implies a dimension of 11", 0) == 0);
  CHECK(contains(parse_error_with("1 11:1\n0\n", {.max_dim = 10}), "88 bytes each; the limit is 10 features"));
  CHECK(parse_error_with("1 1:1\n0\n", {.dim = 20, .max_dim = 10}) ==
        "t: dimension 20 exceeds the limit of 10 features");
}

TEST_CASE("repro data: LIBSVM values must be finite as float") {
  const float largest = std::numeric_limits<float>::max();
  CHECK(parse("1 1:3.4028234663852886e38 2:-3.4028234663852886e38\n0\n").a.val ==
        std::vector<double>{largest, -static_cast<double>(largest)});
  CHECK(parse("1 1:1e-300\n0\n").a.val == std::vector<double>{1e-300});  // tiny is fine
  for (const char* big : {"1e300", "-1e300", "3.5e38", "1e39"}) {
    const std::string message = parse_error(std::string("1 1:1\n\n0 2:1 3:") + big + "\n");
    INFO(message);
    CHECK(message == std::string("t:3: value '") + big +
                         "' of index 3 is too large: |value| must be at most 3.4028234663852886e+38 (the largest "
                         "float), so that its square and the data's sums of squares stay finite");
  }
}

TEST_CASE("repro data: LIBSVM errors print the file's bytes escaped") {
  using repro::detail::quote_text;
  CHECK(quote_text("abc") == "'abc'");
  CHECK(quote_text("") == "''");
  CHECK(quote_text(std::string("a\x01\x7f\xff\0b", 6)) == "'a\\x01\\x7f\\xff\\x00b'");
  CHECK(quote_text("it's a\\b") == "'it\\'s a\\\\b'");
  CHECK(quote_text("\x1b[31mred") == "'\\x1b[31mred'");
  CHECK(quote_text(std::string(100, 'x'), 4) == "'xxxx'... (100 bytes)");

  // A binary file: control bytes, NUL, bytes >= 0x80, an escape sequence, in every quoted part.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {std::string("\x7f"
                   "ELF\x02\x01\x01\0\0 1:1\n",
                   14),
       "t:1: label '\\x7fELF\\x02\\x01\\x01\\x00\\x00' is not a number"},
      {"1 \x1b[2J\n", "t:1: feature '\\x1b[2J' is not of the form index:value"},
      {"1 \x01:1\n", "t:1: index '\\x01' is not a positive integer"},
      {"1 1:\x07\xff\n", "t:1: value '\\x07\\xff' of index 1 is not a number"},
      {"0 1:1\n1 1:1\n\x85 1:1\n", "t:3: label '\\x85' is not a number"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string message = parse_error(text);
    INFO(expected);
    CHECK(message.rfind(expected, 0) == 0);
    CHECK(printable(message));
  }
  // A long binary "line" is cut.
  std::string junk(5000, '\x01');
  const std::string message = parse_error(junk + " 1:1\n");
  CHECK(printable(message));
  CHECK(contains(message, "... (5000 bytes) is not a number"));
  CHECK(message.size() < 400);
}

TEST_CASE("repro data: malformed LIBSVM is rejected naming the line and the problem") {
  struct bad {
    std::string text;
    std::size_t dim;
    std::string where, what;
  };
  const std::vector<bad> cases = {
      {"1 1:1\nabc 1:1\n", 0, "t:2:", "label 'abc' is not a number"},
      {"1 1:1\n0 1:1\n\nnan 2:1\n", 0, "t:4:", "label 'nan' is not finite"},
      {"inf 1:1\n", 0, "t:1:", "label 'inf' is not finite"},
      {"1 1:1\n0 5\n", 0, "t:2:", "feature '5' is not of the form index:value"},
      {"1 0:1\n", 0, "t:1:", "index '0' is not a positive integer"},
      {"1 1:1\n0 -3:1\n", 0, "t:2:", "index '-3' is not a positive integer"},
      {"1 x:1\n", 0, "t:1:", "index 'x' is not a positive integer"},
      {"1 1.5:1\n", 0, "t:1:", "index '1.5' is not a positive integer"},
      {"1 :1\n", 0, "t:1:", "index '' is not a positive integer"},
      {"1 4294967296:1\n", 0, "t:1:", "index '4294967296' is not a positive integer"},
      {"# c\n1 3:1 3:2\n", 0, "t:2:", "index 3 after index 3: indices must be strictly increasing"},
      {"1 3:1 2:2\n", 0, "t:1:", "index 2 after index 3: indices must be strictly increasing"},
      {"1 1:1\n0 3:1\n", 2, "t:2:", "index 3 exceeds the dimension 2"},
      {"1 1:abc\n", 0, "t:1:", "value 'abc' of index 1 is not a number"},
      {"1 1:\n", 0, "t:1:", "value '' of index 1 is not a number"},
      {"1 1:1 2:inf\n", 0, "t:1:", "value 'inf' of index 2 is not finite"},
      {"1 1:1e999\n", 0, "t:1:", "value '1e999' of index 1 is out of the range of double"},
      {"0 1:1\n1 1:1\n\n2 1:1\n", 0, "t:4:", "third distinct label '2' after 0 and 1; expected exactly two classes"},
  };
  for (const bad& c : cases) {
    const std::string message = parse_error(c.text, c.dim);
    INFO("text: ", c.text, "message: ", message);
    CHECK(message.rfind(c.where, 0) == 0);  // starts with "t:LINE:"
    CHECK(contains(message, c.what));
  }
  CHECK(parse_error("# nothing\n\n   \n") == "t: no samples");
  CHECK(parse_error("") == "t: no samples");
  CHECK(parse_error("1 1:1\n1.0 2:1\n") == "t: all samples have label 1; need two classes");
  CHECK(parse_error("-0.5 1:1\n") == "t: all samples have label -0.5; need two classes");
}

TEST_CASE("repro data: load_libsvm reads a file and names errors by path") {
  const std::filesystem::path missing = temp_file("repro_no_such_file");
  std::filesystem::remove(missing);
  CHECK_THROWS_WITH_AS(repro::load_libsvm(missing), (missing.string() + ": cannot open").c_str(), data_error);
  CHECK_THROWS_AS(repro::load_libsvm(std::filesystem::temp_directory_path()), data_error);

  const std::string text = "# round trip\n1 2:0.25 5:-1\n0 1:3\n\n1\n";
  const std::filesystem::path path = temp_file("repro_roundtrip");
  {
    std::ofstream out(path);
    out << text;
  }
  const binary_dataset d = repro::load_libsvm(path);
  const binary_dataset expected = parse(text);
  CHECK(d.name == path.filename().string());
  CHECK(d.dim() == 5);
  CHECK(d.a.row_ptr == expected.a.row_ptr);
  CHECK(d.a.col == expected.a.col);
  CHECK(d.a.val == expected.a.val);
  CHECK(d.y == std::vector<double>{1, -1, 1});
  CHECK(repro::load_libsvm(path, {.dim = 9}).dim() == 9);
  CHECK_THROWS_WITH_AS(repro::load_libsvm(path, {.dim = 4}),
                       (path.string() + ":2: index 5 exceeds the dimension 4").c_str(), data_error);
  std::filesystem::remove(path);
}

// ----------------------------------------------------------------------------- Fashion-MNIST

TEST_CASE("repro data: fashion_mnist_binary on hand-built images") {
  fashion_mnist::labelled_images images;
  images.x.count = 5;
  images.x.rows = images.x.cols = 2;
  images.x.pixels = {
      0,   255, 51, 0,    // class 3
      102, 0,   0,  0,    // class 1
      0,   0,   0,  0,    // class 3, all black: only the bias is stored
      9,   9,   9,  9,    // class 7: not in the task
      255, 255, 0,  153,  // class 1
  };
  images.labels = {3, 1, 3, 7, 1};

  const binary_dataset d = repro::fashion_mnist_binary(images, 3, 1);
  CHECK(d.name == "fashion-mnist 3 vs 1");
  CHECK(d.size() == 4);
  CHECK(d.dim() == 5);
  CHECK(d.a.rows == 4);
  CHECK(d.y == std::vector<double>{1, -1, 1, -1});
  CHECK(d.a.row_ptr == std::vector<std::size_t>{0, 3, 5, 6, 10});
  CHECK(d.a.col == std::vector<std::uint32_t>{1, 2, 4, 0, 4, 4, 0, 1, 3, 4});
  CHECK(d.a.val == std::vector<double>{1.0, 51 / 255.0, 1.0, 102 / 255.0, 1.0, 1.0, 1.0, 1.0, 153 / 255.0, 1.0});

  const binary_dataset no_bias = repro::fashion_mnist_binary(images, 1, 3, 0, false);
  CHECK(no_bias.dim() == 4);
  CHECK(no_bias.y == std::vector<double>{-1, 1, -1, 1});
  CHECK(no_bias.a.row_ptr == std::vector<std::size_t>{0, 2, 3, 3, 6});
  CHECK(no_bias.a.col == std::vector<std::uint32_t>{1, 2, 0, 0, 1, 3});

  const binary_dataset first2 = repro::fashion_mnist_binary(images, 3, 1, 2);
  CHECK(first2.size() == 2);
  CHECK(first2.y == std::vector<double>{1, -1});
  CHECK(first2.a.row_ptr == std::vector<std::size_t>{0, 3, 5});
  CHECK(repro::fashion_mnist_binary(images, 3, 1, 100).size() == 4);

  CHECK_THROWS_AS(repro::fashion_mnist_binary(images, 3, 3), std::invalid_argument);
  CHECK_THROWS_AS(repro::fashion_mnist_binary(images, -1, 3), std::invalid_argument);
  CHECK_THROWS_AS(repro::fashion_mnist_binary(images, 3, 10), std::invalid_argument);
  CHECK_THROWS_WITH_AS(repro::fashion_mnist_binary(images, 3, 5),
                       "fashion_mnist_binary: no images of class 5 among the 2 kept", std::invalid_argument);
  CHECK_THROWS_AS(repro::fashion_mnist_binary(images, 3, 1, 1), std::invalid_argument);  // one class kept
  images.labels.pop_back();
  CHECK_THROWS_AS(repro::fashion_mnist_binary(images, 3, 1), std::invalid_argument);  // inconsistent
}

TEST_CASE("repro data: the real Fashion-MNIST 0 vs 6 task") {
  const std::filesystem::path dir(fashion_mnist::debian_dir);
  if (!std::filesystem::is_directory(dir)) {
    MESSAGE("skipped: ", dir.string(), " is absent (install ", fashion_mnist::debian_package, ")");
    return;
  }
  const auto train = fashion_mnist::load_split(dir, "train");
  const binary_dataset d = repro::fashion_mnist_binary(train, 0, 6);
  CHECK(d.size() == 12000);
  CHECK(d.dim() == 785);
  std::size_t positive = 0;
  for (const double y : d.y) positive += y == 1.0;
  CHECK(positive == 6000);
  std::size_t with_bias = 0;  // rows whose last entry is the bias feature
  for (std::size_t j = 0; j < d.size(); ++j)
    with_bias += !d.a.cols_of(j).empty() && d.a.cols_of(j).back() == 784 && d.a.values_of(j).back() == 1.0;
  CHECK(with_bias == d.size());

  const binary_dataset slice = repro::fashion_mnist_binary(train, 0, 6, 2000);
  REQUIRE(slice.size() == 2000);
  const double L = repro::smoothness(slice);
  const logistic_regression f(slice, L / 10000);
  const auto start = std::chrono::steady_clock::now();
  const repro::optimum opt = repro::minimise(f);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("minimise on 2000 samples of 0 vs 6 (L = ", L, ", l2 = L/1e4): ", seconds, " s, ", opt.newton_iterations,
          " Newton and ", opt.cg_iterations, " CG iterations, f* = ", opt.f);
  std::vector<double> g0(f.dim());
  f.gradient(std::vector<double>(f.dim(), 0.0), g0);
  CHECK(opt.gradient_norm <= 1e-10 * std::max(1.0, norm(g0)));
  CHECK(opt.f < std::log(2.0));
  CHECK(f.accuracy(opt.x) > 0.8);
}

// ----------------------------------------------------------------------------- logistic regression

TEST_CASE("repro logistic: loss at zero is log 2 and stays finite for large margins") {
  const binary_dataset d = random_dataset(30, 5, 1);
  const logistic_regression f(d, 0.3);
  const std::vector<double> zero(5, 0.0);
  CHECK(f.loss(zero) == doctest::Approx(std::log(2.0)).epsilon(1e-15));
  CHECK(f.dim() == 5);
  CHECK(f.samples() == 30);
  CHECK(f.l2() == 0.3);
  CHECK(&f.data() == &d);

  // Margins of +-800: exp(800) overflows, softplus must not.
  const binary_dataset two = from_dense({{1.0}, {1.0}}, {1.0, -1.0});
  const logistic_regression g(two, 0.0);
  const std::vector<double> x{800.0};
  CHECK(g.loss(x) == doctest::Approx(400.0).epsilon(1e-15));
  std::vector<double> grad(1);
  g.gradient(x, grad);
  CHECK(grad[0] == doctest::Approx(0.5).epsilon(1e-15));
}

TEST_CASE("repro logistic: gradient and Hessian products agree with finite differences") {
  const binary_dataset d = random_dataset(40, 6, 2);
  const logistic_regression f(d, 0.05);
  const std::vector<double> x = random_vector(6, 3, 1.5);
  std::vector<double> g(6);
  f.gradient(x, g);

  const double h = 1e-5;
  std::vector<double> fd(6);
  for (std::size_t i = 0; i < 6; ++i) {
    std::vector<double> plus = x, minus = x;
    plus[i] += h;
    minus[i] -= h;
    fd[i] = (f.loss(plus) - f.loss(minus)) / (2 * h);
  }
  CHECK(distance(fd, g) <= 1e-6 * norm(g));

  const std::vector<double> v = random_vector(6, 4, 1.0);
  std::vector<double> hv(6), g_plus(6), g_minus(6), plus(6), minus(6);
  f.hessian_times(x, v, hv);
  for (std::size_t i = 0; i < 6; ++i) {
    plus[i] = x[i] + h * v[i];
    minus[i] = x[i] - h * v[i];
  }
  f.gradient(plus, g_plus);
  f.gradient(minus, g_minus);
  for (std::size_t i = 0; i < 6; ++i) fd[i] = (g_plus[i] - g_minus[i]) / (2 * h);
  CHECK(distance(fd, hv) <= 1e-6 * norm(hv));
}

TEST_CASE("repro logistic: the mean of the sample gradients is the gradient") {
  const binary_dataset d = random_dataset(25, 4, 5);
  const logistic_regression f(d, 0.2);
  const std::vector<double> x = random_vector(4, 6, 2.0);
  std::vector<double> g(4), gj(4), mean(4, 0.0);
  f.gradient(x, g);
  for (std::size_t j = 0; j < f.samples(); ++j) {
    f.sample_gradient(j, x, gj);
    for (std::size_t i = 0; i < 4; ++i) mean[i] += gj[i] / static_cast<double>(f.samples());
  }
  CHECK(distance(mean, g) <= 1e-12 * std::max(1.0, norm(g)));
}

TEST_CASE("repro logistic: accuracy counts a zero margin as wrong") {
  const binary_dataset d = from_dense({{1.0, 0.0}, {-2.0, 1.0}, {0.0, 3.0}, {1.0, 1.0}}, {1, -1, 1, 1});
  const logistic_regression f(d, 0.0);
  CHECK(f.accuracy(std::vector<double>{1.0, 0.0}) == 0.75);  // row 2 has margin 0
  CHECK(f.accuracy(std::vector<double>{1.0, 0.5}) == 1.0);
  CHECK(f.accuracy(std::vector<double>{0.0, 0.0}) == 0.0);
  CHECK(f.accuracy(std::vector<double>{-1.0, -0.5}) == 0.0);
}

TEST_CASE("repro logistic: smoothness is the top eigenvalue of A^T A over 4m") {
  SUBCASE("a generic 4 x 3 matrix, checked against Jacobi eigenvalues") {
    const std::vector<std::vector<double>> a = {{1.0, 2.0, 0.0}, {0.5, -1.0, 3.0}, {0.0, 0.0, 1.5}, {-2.0, 1.0, 1.0}};
    std::vector<std::vector<double>> ata(3, std::vector<double>(3, 0.0));
    for (const auto& row : a)
      for (std::size_t p = 0; p < 3; ++p)
        for (std::size_t q = 0; q < 3; ++q) ata[p][q] += row[p] * row[q];
    const double expected = largest_eigenvalue(ata) / (4.0 * 4.0);
    CHECK(repro::smoothness(from_dense(a, {1, -1, 1, -1})) == doctest::Approx(expected).epsilon(1e-9));
  }
  SUBCASE("orthogonal columns: A^T A is diagonal") {
    // Columns (1,1,0), (1,-1,0), (0,0,3): A^T A = diag(2, 2, 9).
    const binary_dataset d = from_dense({{1.0, 1.0, 0.0}, {1.0, -1.0, 0.0}, {0.0, 0.0, 3.0}}, {1, -1, 1});
    CHECK(repro::smoothness(d) == doctest::Approx(9.0 / 12.0).epsilon(1e-12));
  }
  SUBCASE("a top eigenvector orthogonal to the all-ones vector") {
    // A^T A = [[5, -5], [-5, 5]]: eigenvalues 10 and 0, top eigenvector (1, -1).
    const binary_dataset d = from_dense({{1.0, -1.0}, {2.0, -2.0}}, {1, -1});
    CHECK(repro::smoothness(d) == doctest::Approx(10.0 / 8.0).epsilon(1e-12));
  }
  SUBCASE("a zero matrix") { CHECK(repro::smoothness(from_dense({{0.0, 0.0}}, {1})) == 0.0); }
}

TEST_CASE("repro logistic: minimise reaches a verified minimum") {
  const binary_dataset d = random_dataset(60, 5, 7);
  const double l2 = 0.05;
  const logistic_regression f(d, l2);
  const repro::optimum opt = repro::minimise(f);
  std::vector<double> g0(5);
  f.gradient(std::vector<double>(5, 0.0), g0);
  CHECK(opt.gradient_norm <= 1e-10 * std::max(1.0, norm(g0)));
  CHECK(opt.newton_iterations >= 1);
  CHECK(opt.cg_iterations >= opt.newton_iterations);
  CHECK(opt.f == f.loss(opt.x));
  std::vector<double> g(5);
  f.gradient(opt.x, g);
  CHECK(norm(g) == doctest::Approx(opt.gradient_norm).epsilon(1e-12));

  for (unsigned seed = 10; seed < 20; ++seed) {
    std::vector<double> y = opt.x;
    const std::vector<double> delta = random_vector(5, seed, 1e-4);
    for (std::size_t i = 0; i < 5; ++i) y[i] += delta[i];
    CHECK(opt.f <= f.loss(y));
  }

  // Plain gradient descent with step 1/(L + l2) converges at rate 1 - l2/(L + l2) per step.
  const double step = 1.0 / (repro::smoothness(d) + l2);
  std::vector<double> x(5, 0.0);
  for (int k = 0; k < 20000; ++k) {
    f.gradient(x, g);
    for (std::size_t i = 0; i < 5; ++i) x[i] -= step * g[i];
  }
  INFO("condition number bound ", (repro::smoothness(d) + l2) / l2, ", distance ", distance(x, opt.x));
  CHECK(distance(x, opt.x) <= 1e-9);
  CHECK(std::abs(f.loss(x) - opt.f) <= 1e-12);
}

TEST_CASE("repro logistic: bad arguments throw") {
  const binary_dataset d = random_dataset(10, 3, 8);
  CHECK_THROWS_AS(logistic_regression(d, -1.0), std::invalid_argument);
  CHECK_THROWS_AS(logistic_regression(d, std::nan("")), std::invalid_argument);
  CHECK_THROWS_AS(logistic_regression(d, INFINITY), std::invalid_argument);
  CHECK_THROWS_AS(logistic_regression(binary_dataset{}, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(logistic_regression(from_dense({{1.0}, {2.0}}, {1.0, 0.0}), 1.0), std::invalid_argument);
  CHECK_THROWS_AS(repro::smoothness(binary_dataset{}), std::invalid_argument);

  const logistic_regression f(d, 0.1);
  std::vector<double> x(3, 0.0), wrong(2, 0.0), g(3);
  CHECK_THROWS_AS(f.loss(wrong), std::invalid_argument);
  CHECK_THROWS_AS(f.gradient(x, wrong), std::invalid_argument);
  CHECK_THROWS_AS(f.hessian_times(x, wrong, g), std::invalid_argument);
  CHECK_THROWS_AS(f.sample_gradient(10, x, g), std::out_of_range);
  CHECK_THROWS_AS(f.accuracy(wrong), std::invalid_argument);

  CHECK_THROWS_AS(repro::minimise(logistic_regression(d, 0.0)), std::invalid_argument);
  CHECK_THROWS_AS(repro::minimise(f, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(repro::minimise(f, 1e-10, -1), std::invalid_argument);
  std::string message = "<no std::runtime_error thrown>";
  try {
    repro::minimise(f, 1e-10, 1);  // one Newton step cannot reach 1e-10
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(contains(message, "did not converge in 1 iterations"));
  CHECK(contains(message, "||grad f|| = "));
}
