#pragma once
// CSV files of numbers: what the reproduction program writes for every experiment, and reads
// back to plot and to test.
//
// Numbers are written as the shortest text that reads back to the same double (std::to_chars),
// so a table can be checked bit for bit against a rerun, and read with std::from_chars, which
// does not depend on the locale. Only this simple dialect is supported: a header of plain names
// (no quoting, so names may not contain a comma, a quote or a newline), then rows of numbers;
// non-finite values are "nan", "inf" and "-inf".
#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace repro {

namespace csv_detail {

// Shortest round-trip text of v; "nan", "inf", "-inf" for non-finite values (to_chars might write "-nan").
inline void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "nan";
  } else if (std::isinf(v)) {
    out += v < 0 ? "-inf" : "inf";
  } else {
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, res.ptr);
  }
}

// Why `name` cannot be a column name, or empty if it can.
inline std::string column_name_problem(std::string_view name) {
  if (name.empty()) return "is empty";
  for (const char c : name) {
    if (c == ',') return "contains a comma";
    if (c == '"') return "contains a double quote";
    if (c == '\n' || c == '\r') return "contains a newline";
  }
  return {};
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

inline std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> fields;
  for (;;) {
    const auto comma = line.find(',');
    fields.push_back(line.substr(0, comma));
    if (comma == std::string_view::npos) break;
    line.remove_prefix(comma + 1);
  }
  return fields;
}

inline std::runtime_error parse_error(const std::filesystem::path& path, std::size_t line, const std::string& what) {
  return std::runtime_error("read_csv: " + path.string() + ", line " + std::to_string(line) + ": " + what);
}

}  // namespace csv_detail

/// Writes a CSV file: a header row, then rows of numbers that read back to the same doubles.
/// Rows go out as they are written (buffered); close() flushes and reports write errors, the
/// destructor closes silently.
class csv_writer {
 public:
  /// Creates (truncates) `path`. Throws std::invalid_argument for an empty column list, a bad
  /// or repeated column name, and std::runtime_error "cannot write PATH" if it cannot be opened.
  csv_writer(const std::filesystem::path& path, std::vector<std::string> columns)
      : path_(path), columns_(std::move(columns)) {
    if (columns_.empty()) throw std::invalid_argument("csv_writer: no columns for " + path_.string());
    for (std::size_t i = 0; i < columns_.size(); ++i) {
      if (auto why = csv_detail::column_name_problem(columns_[i]); !why.empty())
        throw std::invalid_argument("csv_writer: column " + std::to_string(i + 1) + " name \"" + columns_[i] + "\" " +
                                    why + " (" + path_.string() + ")");
      for (std::size_t j = 0; j < i; ++j)
        if (columns_[j] == columns_[i])
          throw std::invalid_argument("csv_writer: column name \"" + columns_[i] + "\" appears twice (" +
                                      path_.string() + ")");
    }
    out_.open(path_, std::ios::binary | std::ios::trunc);
    if (!out_) throw std::runtime_error("cannot write " + path_.string());
    std::string header;
    for (std::size_t i = 0; i < columns_.size(); ++i) (header += i ? "," : "") += columns_[i];
    header += '\n';
    put(header);
  }

  csv_writer(csv_writer&&) = default;
  csv_writer& operator=(csv_writer&&) = default;
  csv_writer(const csv_writer&) = delete;
  csv_writer& operator=(const csv_writer&) = delete;

  ~csv_writer() {
    if (out_.is_open()) out_.close();  // errors are only reported by an explicit close()
  }

  /// Appends a row. Throws std::invalid_argument if values.size() differs from the number of
  /// columns, std::logic_error after close(), std::runtime_error on a write error.
  void row(std::span<const double> values) {
    if (!out_.is_open()) throw std::logic_error("csv_writer: row() after close() on " + path_.string());
    if (values.size() != columns_.size())
      throw std::invalid_argument("csv_writer: row of " + std::to_string(values.size()) + " values but " +
                                  path_.string() + " has " + std::to_string(columns_.size()) + " columns");
    line_.clear();
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i) line_ += ',';
      csv_detail::append_number(line_, values[i]);
    }
    line_ += '\n';
    put(line_);
  }

  void row(std::initializer_list<double> values) { row(std::span<const double>(values.begin(), values.size())); }

  /// Flushes and closes; throws std::runtime_error "error writing PATH" if any write failed.
  /// Later calls do nothing.
  void close() {
    if (!out_.is_open()) return;
    out_.flush();
    const bool ok = out_.good();
    out_.close();
    if (!ok || out_.fail()) throw std::runtime_error("error writing " + path_.string());
  }

  const std::filesystem::path& path() const noexcept { return path_; }
  const std::vector<std::string>& columns() const noexcept { return columns_; }

 private:
  void put(const std::string& s) {
    out_.write(s.data(), static_cast<std::streamsize>(s.size()));
    if (!out_) throw std::runtime_error("error writing " + path_.string());
  }

  std::filesystem::path path_;
  std::vector<std::string> columns_;
  std::ofstream out_;
  std::string line_;  // reused between rows
};

/// A CSV file read back: the header and the rows (each as many values as there are columns).
struct csv_table {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;

  /// Index of the column called `name`; throws std::out_of_range listing the columns if absent.
  std::size_t column(std::string_view name) const {
    for (std::size_t i = 0; i < columns.size(); ++i)
      if (columns[i] == name) return i;
    std::string have;
    for (const auto& c : columns) (have += have.empty() ? "" : ", ") += c;
    throw std::out_of_range("csv: no column \"" + std::string(name) + "\" (columns: " + have + ")");
  }

  /// The values of one column, top to bottom.
  std::vector<double> values(std::string_view name) const {
    const std::size_t c = column(name);
    std::vector<double> v;
    v.reserve(rows.size());
    for (const auto& r : rows) v.push_back(r[c]);
    return v;
  }
};

/// Reads a file written by csv_writer (or any CSV of that simple form; CRLF line ends, a UTF-8
/// byte-order mark, spaces around numbers and blank lines are tolerated). Throws
/// std::runtime_error "cannot read PATH" if it cannot be opened, and for a malformed file a
/// std::runtime_error "read_csv: PATH, line N: ..." saying what is wrong.
inline csv_table read_csv(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::runtime_error("cannot read " + path.string() + ": a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());

  csv_table t;
  std::string line;
  std::size_t lineno = 1;
  if (!std::getline(in, line)) throw csv_detail::parse_error(path, 1, "empty file, expected a header row");
  if (line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  for (const auto name : csv_detail::split(line)) {
    const auto n = csv_detail::trim(name);
    if (auto why = csv_detail::column_name_problem(n); !why.empty())
      throw csv_detail::parse_error(
          path, 1, "column " + std::to_string(t.columns.size() + 1) + " name \"" + std::string(n) + "\" " + why);
    for (const auto& c : t.columns)
      if (c == n) throw csv_detail::parse_error(path, 1, "column name \"" + std::string(n) + "\" appears twice");
    t.columns.emplace_back(n);
  }

  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (csv_detail::trim(line).empty()) continue;
    const auto fields = csv_detail::split(line);
    if (fields.size() != t.columns.size())
      throw csv_detail::parse_error(
          path, lineno,
          "expected " + std::to_string(t.columns.size()) + " fields, found " + std::to_string(fields.size()));
    std::vector<double> r(fields.size());
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const auto f = csv_detail::trim(fields[i]);
      const auto res = std::from_chars(f.data(), f.data() + f.size(), r[i]);
      const std::string where = "field " + std::to_string(i + 1) + " (" + t.columns[i] + ") ";
      if (f.empty()) throw csv_detail::parse_error(path, lineno, where + "is empty");
      if (res.ec == std::errc::result_out_of_range)
        throw csv_detail::parse_error(path, lineno, where + "\"" + std::string(f) + "\" is out of the range of double");
      if (res.ec != std::errc() || res.ptr != f.data() + f.size())
        throw csv_detail::parse_error(path, lineno, where + "\"" + std::string(f) + "\" is not a number");
    }
    t.rows.push_back(std::move(r));
  }
  if (in.bad()) throw std::runtime_error("error reading " + path.string());
  return t;
}

}  // namespace repro
