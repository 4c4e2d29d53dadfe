// Writes the seed corpus of every fuzz target: small valid encodings of each payload (from
// the real compressors, for float and double, both index widths, edge dimensions, NaN and
// infinities) and error_feedback checkpoints. Usage: gradcomp_fuzz_seeds <output directory>;
// it writes <output directory>/<target>/<name>.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gradcomp/gradcomp.hpp>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace gc = gradcomp;
namespace fs = std::filesystem;

namespace {

fs::path root;
int written = 0;

void write(const std::string& target, const std::string& name, const std::vector<std::byte>& bytes) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ++written;
}

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  write(target, name,
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(bytes.data()),
                               reinterpret_cast<const std::byte*>(bytes.data()) + bytes.size()));
}

/// A gradient-like vector: smooth values of both signs, a few zeros, optionally NaN and inf.
template <class T>
std::vector<T> input(std::size_t d, bool specials) {
  std::vector<T> x(d);
  for (std::size_t i = 0; i < d; ++i) x[i] = static_cast<T>(std::sin(0.7 * static_cast<double>(i) + 0.3) * (1 + i % 5));
  if (d > 4) x[d / 2] = T(0);
  if (specials && d > 3) {
    x[1] = std::numeric_limits<T>::quiet_NaN();
    x[2] = -std::numeric_limits<T>::infinity();
  }
  return x;
}

template <class T>
const char* tname() {
  return sizeof(T) == 4 ? "f32" : "f64";
}

template <class T, class Index>
void sparse_seeds() {
  const std::string tag = std::string(tname<T>()) + (sizeof(Index) == 4 ? "-i32" : "-i64");
  for (const std::size_t d : {0, 1, 5, 64, 300}) {
    for (const bool specials : {false, true}) {
      const auto x = input<T>(d, specials);
      gc::sparse_vector<T, Index> p;
      gc::compress(gc::exec::seq, gc::top_k{.k = d / 4 + 1}, std::span<const T>(x), p);
      write("fuzz_decode_sparse", "top_k-" + tag + "-d" + std::to_string(d) + (specials ? "-nan" : ""), gc::encode(p));
    }
  }
  gc::sparse_vector<T, Index> huge;  // a dim far beyond its entries
  huge.dim = sizeof(Index) == 8 ? (std::size_t{1} << 40) : 0xffffffffu;
  huge.indices = {0, 12345, static_cast<Index>(huge.dim - 1)};
  huge.values = {T(1), T(-2), T(0.5)};
  write("fuzz_decode_sparse", "huge-dim-" + tag, gc::encode(huge));
}

template <class T, class Index>
void seeded_seeds() {
  const std::string tag = std::string(tname<T>()) + (sizeof(Index) == 4 ? "-i32" : "-i64");
  for (const std::size_t d : {0, 1, 10, 100, 1000}) {
    const auto x = input<T>(d, d == 10);
    for (const std::size_t k : {std::size_t{1}, d / 3 + 1, d}) {
      if (k == 0) continue;
      gc::seeded_sparse_vector<T, Index> p;
      gc::random_k c{.k = k, .seed = 42 + d, .step = k};
      gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
      write("fuzz_decode_seeded_sparse", "random_k-" + tag + "-d" + std::to_string(d) + "-k" + std::to_string(k),
            gc::encode(p));
    }
  }
  // Large dims with few values: the scratch must stay O(k). (2^22 is the largest dim the
  // target decodes with k >= 1, since regenerating hashes every index; 2^33 is skipped there.)
  for (const std::uint64_t dim : {std::uint64_t{1} << 22, std::uint64_t{1} << 33}) {
    if (sizeof(Index) == 4 && dim > 0xffffffffu) continue;
    gc::seeded_sparse_vector<T, Index> p;
    p.dim = dim;
    p.seed = 7;
    p.step = 3;
    p.values = {T(1), T(2), T(-3)};
    write("fuzz_decode_seeded_sparse", "large-dim-" + tag + "-" + std::to_string(dim), gc::encode(p));
  }
}

template <class T>
void sign_seeds() {
  for (const std::size_t d : {0, 1, 7, 8, 9, 64, 65, 200}) {
    const auto x = input<T>(d, d == 9);
    gc::sign_vector<T> p;
    gc::compress(gc::exec::seq, gc::scaled_sign{}, std::span<const T>(x), p);
    write("fuzz_decode_sign", std::string("scaled-") + tname<T>() + "-d" + std::to_string(d), gc::encode(p));
    for (const std::size_t b : {1, 3, 64, 1000}) {
      gc::compress(gc::exec::seq, gc::blockwise_sign{.block_size = b}, std::span<const T>(x), p);
      write("fuzz_decode_sign",
            std::string("blockwise-") + tname<T>() + "-d" + std::to_string(d) + "-b" + std::to_string(b),
            gc::encode(p));
    }
  }
}

template <class T>
void two_level_seeds() {
  for (const std::size_t d : {0, 1, 7, 8, 9, 64, 65, 200}) {
    const auto x = input<T>(d, d == 9);
    gc::two_level_vector<T> p;
    gc::compress(gc::exec::seq, gc::onebit{}, std::span<const T>(x), p);
    write("fuzz_decode_two_level", std::string("onebit-") + tname<T>() + "-d" + std::to_string(d), gc::encode(p));
    for (const std::size_t b : {1, 3, 64, 1000}) {
      gc::compress(gc::exec::seq, gc::onebit{.block_size = b}, std::span<const T>(x), p);
      write("fuzz_decode_two_level",
            std::string("onebit-") + tname<T>() + "-d" + std::to_string(d) + "-b" + std::to_string(b), gc::encode(p));
    }
  }
}

template <class T>
void quantized_seeds() {
  for (const std::size_t d : {0, 1, 5, 33, 200}) {
    const auto x = input<T>(d, false);
    for (const std::uint32_t s : {1u, 7u, 255u, 1u << 20}) {
      gc::quantized_vector<T> p;
      gc::qsgd c{.s = s, .seed = d};
      gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
      write("fuzz_decode_quantized",
            std::string("qsgd-") + tname<T>() + "-d" + std::to_string(d) + "-s" + std::to_string(s), gc::encode(p));
    }
    for (const double q : {0.5, 1e-6}) {
      gc::quantized_vector<T> p;
      gc::grid_rounding c{.spacing = q, .stochastic = d % 2 == 1, .seed = 3};
      gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
      write("fuzz_decode_quantized",
            std::string("grid-") + tname<T>() + "-d" + std::to_string(d) + "-q" + std::to_string(q), gc::encode(p));
    }
    for (const std::uint32_t s : {1u, 8u, 30u}) {  // natural dithering: the power-of-two coding
      gc::quantized_vector<T> p;
      gc::dithering c{.s = s, .partition = gc::dithering::natural, .seed = d};
      gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
      write("fuzz_decode_quantized",
            std::string("natural-") + tname<T>() + "-d" + std::to_string(d) + "-s" + std::to_string(s), gc::encode(p));
    }
  }
  gc::quantized_vector<T> extreme;  // 32-bit levels at both ends of int32
  extreme.dim = 3;
  extreme.scale = std::numeric_limits<T>::min();
  extreme.level_bits = 32;
  extreme.levels = {std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max(), 0};
  write("fuzz_decode_quantized", std::string("extreme-") + tname<T>(), gc::encode(extreme));
}

template <class T>
void dense_seeds() {
  for (const std::size_t d : {0, 1, 4, 100}) {
    const auto x = input<T>(d, d == 4);
    gc::dense_vector<T> p;
    gc::compress(gc::exec::seq, gc::identity{}, std::span<const T>(x), p);
    write("fuzz_decode_dense", std::string("identity-") + tname<T>() + "-d" + std::to_string(d), gc::encode(p));
  }
}

template <class T>
void float_code_seeds() {
  for (const std::size_t d : {0, 1, 5, 8, 33, 200}) {
    const auto x = input<T>(d, false);
    gc::float_code_vector<T> p;
    const std::string tag = std::string(tname<T>()) + "-d" + std::to_string(d);
    gc::compress(gc::exec::seq, gc::float16_cast{}, std::span<const T>(x), p);
    write("fuzz_decode_float_code", "float16-" + tag, gc::encode(p));
    gc::compress(gc::exec::seq, gc::bfloat16_cast{.pre_scale = false}, std::span<const T>(x), p);
    write("fuzz_decode_float_code", "bfloat16-" + tag, gc::encode(p));
    gc::compress(gc::exec::seq, gc::natural_compression{.seed = d}, std::span<const T>(x), p);
    write("fuzz_decode_float_code", "natural-" + tag, gc::encode(p));
  }
  gc::float_code_vector<T> extreme;  // the largest finite codes at the largest pre-scale
  extreme.dim = 3;
  extreme.format = gc::code_format::float16;
  extreme.scale_exponent = gc::detail::scale_exponent_range<T>(gc::code_format::float16).lo;
  extreme.codes = {0x77ff, 0xf7ff, 0x0001};
  write("fuzz_decode_float_code", std::string("extreme-") + tname<T>(), gc::encode(extreme));
}

template <class T>
void bucket_quantized_seeds() {
  for (const std::size_t d : {0, 1, 5, 33, 200}) {
    const auto x = input<T>(d, false);
    for (const std::uint32_t bits : {1u, 3u, 8u}) {
      for (const std::size_t b : {1, 7, 1024}) {
        gc::bucket_quantized_vector<T> p;
        gc::maxmin_quantizer c{.bits = bits, .bucket_size = b, .seed = d};
        gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
        write("fuzz_decode_bucket_quantized",
              std::string("maxmin-") + tname<T>() + "-d" + std::to_string(d) + "-bits" + std::to_string(bits) + "-b" +
                  std::to_string(b),
              gc::encode(p));
      }
    }
  }
  gc::bucket_quantized_vector<T> extreme;  // a top level that lands just below max(T)
  extreme.dim = 2;
  extreme.bucket_size = 2;
  extreme.bits = 8;
  extreme.mins = {-std::numeric_limits<T>::max() / T(2)};
  extreme.units = {std::numeric_limits<T>::max() / T(256)};
  extreme.levels = {255, 0};
  write("fuzz_decode_bucket_quantized", std::string("extreme-") + tname<T>(), gc::encode(extreme));
}

template <class T, class C>
void checkpoint_seeds(const C& c, const std::string& name) {
  for (const std::size_t d : {0, 1, 3, 17}) {
    gc::error_feedback<C, T> ef(c, d);
    const auto x = input<T>(d, false);
    for (int step = 0; step < 2; ++step) ef.compress(gc::exec::seq, std::span<const T>(x), T(0.5));
    std::ostringstream out;
    ef.save(out);
    write("fuzz_error_feedback_load", name + "-" + tname<T>() + "-d" + std::to_string(d), out.str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output directory>\n", argv[0]);
    return 2;
  }
  root = argv[1];
  sparse_seeds<float, std::uint32_t>();
  sparse_seeds<float, std::uint64_t>();
  sparse_seeds<double, std::uint32_t>();
  sparse_seeds<double, std::uint64_t>();
  seeded_seeds<float, std::uint32_t>();
  seeded_seeds<float, std::uint64_t>();
  seeded_seeds<double, std::uint32_t>();
  seeded_seeds<double, std::uint64_t>();
  sign_seeds<float>();
  sign_seeds<double>();
  two_level_seeds<float>();
  two_level_seeds<double>();
  quantized_seeds<float>();
  quantized_seeds<double>();
  dense_seeds<float>();
  dense_seeds<double>();
  float_code_seeds<float>();
  float_code_seeds<double>();
  bucket_quantized_seeds<float>();
  bucket_quantized_seeds<double>();
  checkpoint_seeds<float>(gc::top_k{.k = 2}, "top_k");
  checkpoint_seeds<double>(gc::hard_threshold{.lambda = 0.3}, "hard_threshold");
  checkpoint_seeds<double>(gc::random_k{.k = 2, .seed = 9, .step = 4}, "random_k");
  checkpoint_seeds<float>(gc::qsgd{.s = 4, .seed = 1}, "qsgd");
  checkpoint_seeds<float>(gc::scaled_sign{}, "scaled_sign");
  checkpoint_seeds<double>(gc::onebit{.block_size = 4}, "onebit");
  std::printf("gradcomp_fuzz_seeds: wrote %d seeds to %s\n", written, argv[1]);
  return 0;
}
