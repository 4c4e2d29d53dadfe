#pragma once
// Data for the convex experiment (regularised logistic regression): a small CSR matrix, a
// binary data set, a LIBSVM text reader and a Fashion-MNIST two-class task. (samples.hpp
// puts the rows in a canonical order and assigns them to the workers.)
//
// Errors the user can cause are exceptions with a message that says what was expected:
// malformed LIBSVM text throws repro::data_error "NAME:LINE: message" (1-based lines) so an
// editor can jump to the line, with any text from the file quoted and escaped; bad
// arguments throw std::invalid_argument.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "fashion_mnist.hpp"

namespace repro {

/// Compressed sparse rows, double values, column indices ascending within a row.
struct csr_matrix {
  std::size_t rows = 0, cols = 0;
  std::vector<std::size_t> row_ptr{0};  // rows + 1 entries
  std::vector<std::uint32_t> col;       // nnz
  std::vector<double> val;              // nnz

  std::size_t nnz() const noexcept { return val.size(); }
  std::span<const std::uint32_t> cols_of(std::size_t r) const noexcept {
    return {col.data() + row_ptr[r], row_ptr[r + 1] - row_ptr[r]};
  }
  std::span<const double> values_of(std::size_t r) const noexcept {
    return {val.data() + row_ptr[r], row_ptr[r + 1] - row_ptr[r]};
  }
  /// a_r . x
  double dot_row(std::size_t r, std::span<const double> x) const noexcept {
    double s = 0.0;
    for (std::size_t k = row_ptr[r], end = row_ptr[r + 1]; k < end; ++k) s += val[k] * x[col[k]];
    return s;
  }
  /// y += alpha * a_r
  void add_row(std::size_t r, double alpha, std::span<double> y) const noexcept {
    for (std::size_t k = row_ptr[r], end = row_ptr[r + 1]; k < end; ++k) y[col[k]] += alpha * val[k];
  }
};

/// A binary classification data set: rows a_j, labels y_j in {-1, +1}.
struct binary_dataset {
  std::string name;  // e.g. "fashion-mnist 0 vs 6" or the file name
  csr_matrix a;
  std::vector<double> y;       // +1 / -1
  double positive_label = 1;   // the label (LIBSVM) or class (Fashion-MNIST) that became +1
  double negative_label = -1;  // and the one that became -1

  std::size_t size() const noexcept { return y.size(); }
  std::size_t dim() const noexcept { return a.cols; }
};

/// Thrown for malformed LIBSVM text; what() is "PATH:LINE: message" (1-based line numbers).
class data_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The largest dimension a LIBSVM file may imply by its feature indices unless the caller allows
/// more (libsvm_options::max_dim; --max-dim): 2^24 = 16,777,216 features. The data stay sparse,
/// but the model, every worker's gradient and its error-feedback residual are dense vectors of d
/// doubles: 134 MB each at this limit, several per worker. A larger index is far more often a
/// corrupt or misread file than a real data set, and would otherwise end in std::bad_alloc.
inline constexpr std::size_t default_max_dim = std::size_t{1} << 24;

/// The largest magnitude a LIBSVM value may have: the largest finite float (3.4028235e38). Every
/// value then survives conversion to float, and its square (< 1.2e77) and any sum of squares
/// the model forms (the smoothness constant sigma_max(A)^2, margins, gradients) stay finite in
/// double; 1e300 would overflow to inf there and fail much later as "l2 = -nan".
inline constexpr double max_abs_value = std::numeric_limits<float>::max();

/// How parse_libsvm reads a file.
struct libsvm_options {
  std::size_t dim = 0;                    // 0: the largest index seen; else an index > dim is an error
  std::size_t max_dim = default_max_dim;  // an index (or a dim) above this is an error
  /// The label that becomes +1 (the other one -1). Unset: the labels must be -1 and +1, or 0
  /// and 1 (1 becomes +1); anything else is an error that lists the labels found.
  std::optional<double> positive_label{};
};

namespace detail {

enum class number_status { ok, junk, out_of_range, not_finite };

/// Parses all of s as a double. std::from_chars rejects a leading '+', but LIBSVM files
/// commonly write labels as "+1", so one '+' before a digit or '.' is skipped.
inline number_status parse_double(std::string_view s, double& out) {
  if (s.size() > 1 && s[0] == '+' && s[1] != '+' && s[1] != '-') s.remove_prefix(1);
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, out);
  if (ec == std::errc::result_out_of_range) return number_status::out_of_range;
  if (ec != std::errc{} || ptr != end) return number_status::junk;
  return std::isfinite(out) ? number_status::ok : number_status::not_finite;
}

/// What is wrong with a number, for messages such as "label 'x' is not a number".
inline std::string number_problem(number_status s) {
  switch (s) {
    case number_status::junk:
      return "is not a number";
    case number_status::out_of_range:
      return "is out of the range of double";
    case number_status::not_finite:
      return "is not finite (a finite number was expected)";
    case number_status::ok:
      break;
  }
  return "is fine";
}

/// The shortest text that reads back as v ("1", "-1", "0.5"), for labels in messages.
inline std::string format_number(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// Text from a file, in single quotes, safe to print: printable ASCII as it is; a backslash
/// and a quote escaped (\\, \'), every other byte as \xHH, so that a binary file cannot send
/// control bytes to the terminal. Longer than `limit` bytes: the first `limit`, then
/// "... (N bytes)".
inline std::string quote_text(std::string_view text, std::size_t limit = 60) {
  std::string out = "'";
  for (const char ch : text.substr(0, limit)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += ch;
    } else if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  out += '\'';
  if (text.size() > limit) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

inline bool is_blank(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/// Removes and returns the next whitespace-separated token of rest ("" at the end).
inline std::string_view next_token(std::string_view& rest) {
  std::size_t b = 0;
  while (b < rest.size() && is_blank(rest[b])) ++b;
  std::size_t e = b;
  while (e < rest.size() && !is_blank(rest[e])) ++e;
  const std::string_view token = rest.substr(b, e - b);
  rest.remove_prefix(e);
  return token;
}

/// "34.4 GB" (decimal units).
inline std::string format_memory(double bytes) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (bytes >= 1000.0 && u < 5) {
    bytes /= 1000.0;
    ++u;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.3g %s", bytes, units[u]);
  return buf;
}

}  // namespace detail

/// Parses LIBSVM text: one sample per line, "label index:value index:value ..." with 1-based
/// strictly increasing indices. Blank lines and '#' comments (to end of line) are skipped.
/// Labels: exactly two distinct numeric values; -1 and +1, or 0 and 1 (1 becomes +1), unless
/// opt.positive_label names the one that becomes +1 (the other becomes -1). Values are stored
/// as written (explicit zeros included), columns 0-based; |value| must be at most
/// max_abs_value. opt.dim = 0 means "the largest index seen"; a nonzero dim makes an index > dim
/// an error; an index above opt.max_dim is an error that says how much memory its dimension
/// would take. Every malformed line throws data_error "NAME:LINE: ..." (text from the file
/// quoted and escaped); no samples throws "NAME: no samples", a single label value "NAME: all
/// samples have label X; need two classes", and labels that are not a pair the options accept
/// "NAME: labels A (line I) and B (line J): ...".
inline binary_dataset parse_libsvm(std::istream& in, const std::string& name, const libsvm_options& opt = {}) {
  using detail::number_status;
  using detail::quote_text;
  constexpr std::uint64_t max_index = std::numeric_limits<std::uint32_t>::max();  // columns are u32
  if (opt.dim > opt.max_dim)
    throw data_error(name + ": dimension " + std::to_string(opt.dim) + " exceeds the limit of " +
                     std::to_string(opt.max_dim) + " features");

  binary_dataset out;
  out.name = name;
  std::vector<double> raw_labels;  // as written; mapped to +-1 once both classes are known
  double classes[2] = {0.0, 0.0};
  std::size_t class_line[2] = {0, 0};  // where each label first appears
  std::size_t n_classes = 0;
  std::uint64_t largest_index = 0;

  std::string line;
  std::size_t line_no = 0;
  const auto fail = [&](const std::string& message) {
    return data_error(name + ":" + std::to_string(line_no) + ": " + message);
  };

  while (std::getline(in, line)) {
    ++line_no;
    std::string_view rest(line);
    rest = rest.substr(0, rest.find('#'));  // npos keeps the whole line
    const std::string_view label_text = detail::next_token(rest);
    if (label_text.empty()) continue;  // blank or comment-only line

    double label = 0.0;
    if (const auto s = detail::parse_double(label_text, label); s != number_status::ok)
      throw fail("label " + quote_text(label_text) + " " + detail::number_problem(s));
    if (std::find(classes, classes + n_classes, label) == classes + n_classes) {
      if (n_classes == 2)
        throw fail("third distinct label " + quote_text(label_text) + " after " + detail::format_number(classes[0]) +
                   " and " + detail::format_number(classes[1]) + "; expected exactly two classes");
      class_line[n_classes] = line_no;
      classes[n_classes++] = label;
    }

    std::uint64_t previous = 0;
    for (std::string_view token = detail::next_token(rest); !token.empty(); token = detail::next_token(rest)) {
      const std::size_t colon = token.find(':');
      if (colon == std::string_view::npos)
        throw fail("feature " + quote_text(token) + " is not of the form index:value");
      const std::string_view index_text = token.substr(0, colon), value_text = token.substr(colon + 1);

      std::uint64_t index = 0;
      const auto [ptr, ec] = std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
      if (ec != std::errc{} || ptr != index_text.data() + index_text.size() || index == 0 || index > max_index)
        throw fail("index " + quote_text(index_text) + " is not a positive integer (expected 1.." +
                   std::to_string(max_index) + ")");
      if (index <= previous)
        throw fail("index " + std::to_string(index) + " after index " + std::to_string(previous) +
                   ": indices must be strictly increasing");
      if (opt.dim != 0 && index > opt.dim)
        throw fail("index " + std::to_string(index) + " exceeds the dimension " + std::to_string(opt.dim));
      if (index > opt.max_dim)
        throw fail("index " + std::to_string(index) + " implies a dimension of " + std::to_string(index) +
                   " features: the model, every worker's gradient and its error-feedback residual are dense "
                   "vectors of that many doubles, " +
                   detail::format_memory(8.0 * static_cast<double>(index)) + " each; the limit is " +
                   std::to_string(opt.max_dim) + " features (--max-dim raises it)");

      double value = 0.0;
      if (const auto s = detail::parse_double(value_text, value); s != number_status::ok)
        throw fail("value " + quote_text(value_text) + " of index " + std::to_string(index) + " " +
                   detail::number_problem(s));
      if (std::abs(value) > max_abs_value)
        throw fail("value " + quote_text(value_text) + " of index " + std::to_string(index) +
                   " is too large: |value| must be at most " + detail::format_number(max_abs_value) +
                   " (the largest float), so that its square and the data's sums of squares stay finite");

      out.a.col.push_back(static_cast<std::uint32_t>(index - 1));
      out.a.val.push_back(value);
      previous = index;
    }
    largest_index = std::max(largest_index, previous);
    out.a.row_ptr.push_back(out.a.col.size());
    raw_labels.push_back(label);
  }
  if (in.bad()) throw data_error(name + ": read error after line " + std::to_string(line_no));
  if (raw_labels.empty()) throw data_error(name + ": no samples");
  if (n_classes < 2)
    throw data_error(name + ": all samples have label " + detail::format_number(classes[0]) + "; need two classes");

  const std::string found = "labels " + detail::format_number(classes[0]) + " (line " + std::to_string(class_line[0]) +
                            ") and " + detail::format_number(classes[1]) + " (line " + std::to_string(class_line[1]) +
                            ")";
  const auto has = [&](double a, double b) {
    return (classes[0] == a && classes[1] == b) || (classes[0] == b && classes[1] == a);
  };
  if (opt.positive_label) {
    if (*opt.positive_label != classes[0] && *opt.positive_label != classes[1])
      throw data_error(name + ": the positive label " + detail::format_number(*opt.positive_label) +
                       " (--positive-label) is not one of the " + found);
    out.positive_label = *opt.positive_label;
  } else {
    if (!has(-1.0, 1.0) && !has(0.0, 1.0))
      throw data_error(name + ": " + found + ": expected -1 and +1, or 0 and 1; --positive-label L makes label L +1 " +
                       "and the other -1");
    out.positive_label = 1.0;
  }
  out.negative_label = classes[0] == out.positive_label ? classes[1] : classes[0];
  out.y.reserve(raw_labels.size());
  for (const double l : raw_labels) out.y.push_back(l == out.positive_label ? 1.0 : -1.0);
  out.a.rows = raw_labels.size();
  out.a.cols = opt.dim != 0 ? opt.dim : static_cast<std::size_t>(largest_index);
  return out;
}

/// Reads a LIBSVM file (see parse_libsvm); errors name the path. The data set is named after the
/// file name. A missing or unreadable file throws data_error "PATH: cannot open".
inline binary_dataset load_libsvm(const std::filesystem::path& path, const libsvm_options& opt = {}) {
  std::error_code ec;
  // An ifstream "opens" a directory on Linux and then reads nothing; say so instead of "no samples".
  if (std::filesystem::is_directory(path, ec)) throw data_error(path.string() + ": cannot open: is a directory");
  std::ifstream in(path);
  if (!in) throw data_error(path.string() + ": cannot open");
  binary_dataset data = parse_libsvm(in, path.string(), opt);
  data.name = path.filename().string();
  return data;
}

/// A binary task from Fashion-MNIST: images of class `positive` get +1, class `negative` -1,
/// pixels scaled to [0, 1] (zeros not stored), plus a constant-1 bias feature as the last
/// column when bias is true (dim 785). Keeps the data set's order; max_samples > 0 keeps only the
/// first max_samples matching images. positive == negative, a class outside 0..9, inconsistent
/// images, or a result lacking one of the two classes -> std::invalid_argument.
inline binary_dataset fashion_mnist_binary(const fashion_mnist::labelled_images& images, int positive, int negative,
                                           std::size_t max_samples = 0, bool bias = true) {
  const int num_classes = static_cast<int>(fashion_mnist::num_classes);
  for (const int c : {positive, negative})
    if (c < 0 || c >= num_classes)
      throw std::invalid_argument("fashion_mnist_binary: class " + std::to_string(c) + " is not a class 0.." +
                                  std::to_string(num_classes - 1));
  if (positive == negative)
    throw std::invalid_argument("fashion_mnist_binary: positive and negative are both class " +
                                std::to_string(positive) + "; need two different classes");
  const fashion_mnist::images& x = images.x;
  const std::size_t pixels = x.pixels_per_image();
  if (images.labels.size() != x.count || x.pixels.size() != x.count * pixels)
    throw std::invalid_argument("fashion_mnist_binary: inconsistent images: " + std::to_string(images.labels.size()) +
                                " labels, count " + std::to_string(x.count) + ", " + std::to_string(x.pixels.size()) +
                                " pixel bytes for " + std::to_string(pixels) + " pixels per image");
  if (pixels + 1 > std::numeric_limits<std::uint32_t>::max())
    throw std::invalid_argument("fashion_mnist_binary: images too large for 32-bit column indices");

  binary_dataset out;
  out.name = "fashion-mnist " + std::to_string(positive) + " vs " + std::to_string(negative);
  out.positive_label = positive;
  out.negative_label = negative;
  out.a.cols = pixels + (bias ? 1 : 0);
  std::size_t n_positive = 0;
  for (std::size_t i = 0; i < x.count && (max_samples == 0 || out.size() < max_samples); ++i) {
    const int label = images.labels[i];
    if (label != positive && label != negative) continue;
    const std::uint8_t* p = x.image(i);
    for (std::size_t k = 0; k < pixels; ++k) {
      if (p[k] == 0) continue;
      out.a.col.push_back(static_cast<std::uint32_t>(k));
      out.a.val.push_back(p[k] / 255.0);
    }
    if (bias) {
      out.a.col.push_back(static_cast<std::uint32_t>(pixels));
      out.a.val.push_back(1.0);
    }
    out.a.row_ptr.push_back(out.a.col.size());
    out.y.push_back(label == positive ? 1.0 : -1.0);
    n_positive += label == positive;
  }
  out.a.rows = out.y.size();
  // A one-class "binary" task would only fail later, less clearly, in the optimiser.
  if (n_positive == 0 || n_positive == out.size())
    throw std::invalid_argument("fashion_mnist_binary: no images of class " +
                                std::to_string(n_positive == 0 ? positive : negative) + " among the " +
                                std::to_string(out.size()) + " kept");
  return out;
}

}  // namespace repro
