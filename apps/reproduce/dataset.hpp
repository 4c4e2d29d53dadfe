#pragma once
// Data for the convex experiment (regularised logistic regression): a small CSR matrix, a
// binary data set, a LIBSVM text reader and a Fashion-MNIST two-class task.
//
// Errors the user can cause are exceptions with a message that says what was expected:
// malformed LIBSVM text throws repro::data_error "NAME:LINE: message" (1-based lines) so an
// editor can jump to the line; bad arguments throw std::invalid_argument.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
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
  std::vector<double> y;  // +1 / -1

  std::size_t size() const noexcept { return y.size(); }
  std::size_t dim() const noexcept { return a.cols; }
};

/// Thrown for malformed LIBSVM text; what() is "PATH:LINE: message" (1-based line numbers).
class data_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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

}  // namespace detail

/// Parses LIBSVM text: one sample per line, "label index:value index:value ..." with 1-based
/// strictly increasing indices. Blank lines and '#' comments (to end of line) are skipped.
/// Labels: exactly two distinct numeric values are allowed; the larger becomes +1, the smaller -1
/// (so {-1,+1}, {0,1}, {1,2} all work). Values are stored as written (explicit zeros included),
/// columns 0-based. dim = 0 means "the largest index seen"; a nonzero dim makes an index > dim an
/// error. Every malformed line throws data_error "NAME:LINE: ..."; no samples at all throws
/// "NAME: no samples" and a single label value "NAME: all samples have label X; need two classes".
inline binary_dataset parse_libsvm(std::istream& in, const std::string& name, std::size_t dim = 0) {
  using detail::number_status;
  constexpr std::uint64_t max_index = std::numeric_limits<std::uint32_t>::max();  // columns are u32

  binary_dataset out;
  out.name = name;
  std::vector<double> raw_labels;  // as written; mapped to +-1 once both classes are known
  double classes[2] = {0.0, 0.0};
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
      throw fail("label '" + std::string(label_text) + "' " + detail::number_problem(s));
    if (std::find(classes, classes + n_classes, label) == classes + n_classes) {
      if (n_classes == 2)
        throw fail("third distinct label '" + std::string(label_text) + "' after " + detail::format_number(classes[0]) +
                   " and " + detail::format_number(classes[1]) + "; expected exactly two classes");
      classes[n_classes++] = label;
    }

    std::uint64_t previous = 0;
    for (std::string_view token = detail::next_token(rest); !token.empty(); token = detail::next_token(rest)) {
      const std::size_t colon = token.find(':');
      if (colon == std::string_view::npos)
        throw fail("feature '" + std::string(token) + "' is not of the form index:value");
      const std::string_view index_text = token.substr(0, colon), value_text = token.substr(colon + 1);

      std::uint64_t index = 0;
      const auto [ptr, ec] = std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
      if (ec != std::errc{} || ptr != index_text.data() + index_text.size() || index == 0 || index > max_index)
        throw fail("index '" + std::string(index_text) + "' is not a positive integer (expected 1.." +
                   std::to_string(max_index) + ")");
      if (index <= previous)
        throw fail("index " + std::to_string(index) + " after index " + std::to_string(previous) +
                   ": indices must be strictly increasing");
      if (dim != 0 && index > dim)
        throw fail("index " + std::to_string(index) + " exceeds the dimension " + std::to_string(dim));

      double value = 0.0;
      if (const auto s = detail::parse_double(value_text, value); s != number_status::ok)
        throw fail("value '" + std::string(value_text) + "' of index " + std::to_string(index) + " " +
                   detail::number_problem(s));

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

  const double positive = std::max(classes[0], classes[1]);
  out.y.reserve(raw_labels.size());
  for (const double l : raw_labels) out.y.push_back(l == positive ? 1.0 : -1.0);
  out.a.rows = raw_labels.size();
  out.a.cols = dim != 0 ? dim : static_cast<std::size_t>(largest_index);
  return out;
}

/// Reads a LIBSVM file (see parse_libsvm); errors name the path. The data set is named after the
/// file name. A missing or unreadable file throws data_error "PATH: cannot open".
inline binary_dataset load_libsvm(const std::filesystem::path& path, std::size_t dim = 0) {
  std::error_code ec;
  // An ifstream "opens" a directory on Linux and then reads nothing; say so instead of "no samples".
  if (std::filesystem::is_directory(path, ec)) throw data_error(path.string() + ": cannot open: is a directory");
  std::ifstream in(path);
  if (!in) throw data_error(path.string() + ": cannot open");
  binary_dataset data = parse_libsvm(in, path.string(), dim);
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
