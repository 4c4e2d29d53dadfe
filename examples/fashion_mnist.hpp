#pragma once
// A small reader for the IDX files of MNIST and Fashion-MNIST (LeCun's format):
//
//   images: u32 magic 0x00000803, u32 count, u32 rows, u32 cols, count*rows*cols bytes
//   labels: u32 magic 0x00000801, u32 count, count bytes
//
// All header integers are big-endian. Debian's dataset-fashion-mnist installs the four
// files gzip-compressed under /usr/share/datasets/fashion-mnist; a .gz file is read by
// piping it through `gzip -dc` (popen), so the examples need no zlib dependency and the
// reader still accepts uncompressed files. Every malformed input throws
// std::runtime_error naming the file; a missing file throws fashion_mnist::missing_data.
//
// Header-only and independent of gradcomp, so other examples can reuse it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sys/wait.h>  // WIFEXITED, WEXITSTATUS for pclose's status

namespace fashion_mnist {

/// The default location of Debian's dataset-fashion-mnist package.
inline constexpr std::string_view debian_dir = "/usr/share/datasets/fashion-mnist";
inline constexpr std::string_view debian_package = "dataset-fashion-mnist";
inline constexpr std::size_t num_classes = 10;

/// A data file is absent. Separate from other errors so that callers can say which
/// package provides it instead of printing a parse error.
class missing_data : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// `count` images of rows x cols pixels, row-major, one byte (0..255) per pixel.
struct images {
  std::size_t count = 0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<std::uint8_t> pixels;  // count * rows * cols

  std::size_t pixels_per_image() const noexcept { return rows * cols; }
  const std::uint8_t* image(std::size_t i) const noexcept { return pixels.data() + i * pixels_per_image(); }
};

/// Images with their class labels (0..num_classes-1).
struct labelled_images {
  images x;
  std::vector<std::uint8_t> labels;

  std::size_t size() const noexcept { return labels.size(); }
};

namespace detail {

[[noreturn]] inline void fail(const std::filesystem::path& file, const std::string& what) {
  throw std::runtime_error(file.string() + ": " + what);
}

/// Quotes s for /bin/sh: wraps it in single quotes, each ' becoming '\''.
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

/// The whole decompressed content of a .gz file, via `gzip -dc`.
inline std::vector<std::uint8_t> read_gzip(const std::filesystem::path& file) {
  // 2>&1 would mix gzip's message into the data; let it go to our stderr instead.
  const std::string command = "gzip -dc -- " + shell_quote(file.string());
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) fail(file, "cannot run `gzip -dc` to decompress it (is gzip installed?)");
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  std::size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0) bytes.insert(bytes.end(), chunk, chunk + n);
  const bool read_error = std::ferror(pipe) != 0;
  const int status = ::pclose(pipe);
  if (read_error) fail(file, "read error while decompressing");
  if (status != 0) {
    const std::string how = status == -1        ? "could not be waited for"
                            : WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                                : "was killed";
    fail(file, "`gzip -dc` " + how + ": truncated or not a gzip file?");
  }
  return bytes;
}

inline std::vector<std::uint8_t> read_plain(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot open for reading");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(file, "read error");
  return bytes;
}

/// Big-endian u32 at offset (the caller has checked the size).
inline std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t offset) {
  return (std::uint32_t{b[offset]} << 24) | (std::uint32_t{b[offset + 1]} << 16) | (std::uint32_t{b[offset + 2]} << 8) |
         std::uint32_t{b[offset + 3]};
}

inline std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

/// Checks the magic and that the file holds exactly header + payload bytes; returns the
/// header's dimension fields (count, then rows and cols for images).
inline std::vector<std::size_t> check_header(const std::filesystem::path& file, const std::vector<std::uint8_t>& b,
                                             std::uint32_t magic, std::size_t dims, const char* kind) {
  const std::size_t header = 4 + 4 * dims;
  if (b.size() < header)
    fail(file, std::string("truncated: ") + std::to_string(b.size()) + " bytes, an IDX " + kind + " header needs " +
                   std::to_string(header));
  if (be32(b, 0) != magic)
    fail(file,
         std::string("bad magic ") + hex32(be32(b, 0)) + ", expected " + hex32(magic) + " (IDX " + kind + " file)");
  std::vector<std::size_t> sizes;
  std::string shape;
  // The product is computed in double: the u32 fields could overflow size_t, and the exact
  // value matters only when it is small enough to match the file size.
  double payload = 1.0;
  for (std::size_t i = 0; i < dims; ++i) {
    sizes.push_back(be32(b, 4 + 4 * i));
    shape += (i ? " x " : "") + std::to_string(sizes.back());
    payload *= static_cast<double>(sizes.back());
  }
  const double expected = static_cast<double>(header) + payload;
  if (expected != static_cast<double>(b.size())) {
    char needs[32];
    std::snprintf(needs, sizeof needs, "%.0f", expected);
    fail(file, std::string(expected > static_cast<double>(b.size()) ? "truncated" : "trailing bytes") + ": header (" +
                   shape + ") needs " + needs + " bytes, file has " + std::to_string(b.size()));
  }
  return sizes;
}

}  // namespace detail

/// The bytes of file, decompressed if its name ends in .gz.
inline std::vector<std::uint8_t> read_bytes(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) throw missing_data(file.string() + ": no such file");
  return file.extension() == ".gz" ? detail::read_gzip(file) : detail::read_plain(file);
}

/// Reads an IDX image file (magic 0x00000803).
inline images read_images(const std::filesystem::path& file) {
  std::vector<std::uint8_t> b = read_bytes(file);
  const auto sizes = detail::check_header(file, b, 0x00000803u, 3, "images");
  images out;
  out.count = sizes[0];
  out.rows = sizes[1];
  out.cols = sizes[2];
  if (out.count > 0 && out.pixels_per_image() == 0) detail::fail(file, "images of zero pixels");
  out.pixels.assign(b.begin() + 16, b.end());
  return out;
}

/// Reads an IDX label file (magic 0x00000801).
inline std::vector<std::uint8_t> read_labels(const std::filesystem::path& file) {
  std::vector<std::uint8_t> b = read_bytes(file);
  detail::check_header(file, b, 0x00000801u, 1, "labels");
  return std::vector<std::uint8_t>(b.begin() + 8, b.end());
}

/// dir/name, or dir/name.gz when only the compressed file exists. Throws missing_data
/// naming both candidates when neither does.
inline std::filesystem::path find_file(const std::filesystem::path& dir, const std::string& name) {
  std::error_code ec;
  for (const std::filesystem::path& candidate : {dir / name, dir / (name + ".gz")})
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
  throw missing_data("neither " + (dir / name).string() + " nor " + (dir / (name + ".gz")).string() + " exists");
}

/// One split of Fashion-MNIST (or MNIST): split is "train" or "t10k". Checks that images and
/// labels agree in count and that every label is a class 0..9.
inline labelled_images load_split(const std::filesystem::path& dir, const std::string& split) {
  const auto image_file = find_file(dir, split + "-images-idx3-ubyte");
  const auto label_file = find_file(dir, split + "-labels-idx1-ubyte");
  labelled_images out{read_images(image_file), read_labels(label_file)};
  if (out.labels.size() != out.x.count)
    detail::fail(label_file, std::to_string(out.labels.size()) + " labels for " + std::to_string(out.x.count) +
                                 " images in " + image_file.string());
  for (std::size_t i = 0; i < out.labels.size(); ++i)
    if (out.labels[i] >= num_classes)
      detail::fail(label_file, "label " + std::to_string(out.labels[i]) + " at index " + std::to_string(i) +
                                   " is not a class 0.." + std::to_string(num_classes - 1));
  return out;
}

}  // namespace fashion_mnist
