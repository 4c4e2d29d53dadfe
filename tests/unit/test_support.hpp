#pragma once
// Input generators and comparison helpers shared by the unit tests.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace gradcomp_test {

/// The kinds of input every compressor is tested on: ordinary and adversarial.
enum class input_kind {
  normal,          // N(0, 1)
  heavy_tailed,    // Student-t with 3 degrees of freedom, like real gradients
  ties,            // few distinct magnitudes, random signs: many ties at the k-th value
  all_equal,       // every |x_i| the same
  with_zeros,      // half exact zeros, some negative zeros
  denormals,       // subnormal magnitudes mixed with zeros
  narrow_range,    // every |x_i| in [1, 1.00003]: leading bits identical
  integers,        // small integers (exact arithmetic, for conservation tests)
  levels_256,      // N(0, 1) quantised to 256 levels: heavy ties among many distinct values
};

inline constexpr input_kind all_input_kinds[] = {
    input_kind::normal,     input_kind::heavy_tailed, input_kind::ties,         input_kind::all_equal,
    input_kind::with_zeros, input_kind::denormals,    input_kind::narrow_range, input_kind::integers,
    input_kind::levels_256};

inline const char* to_string(input_kind k) {
  switch (k) {
    case input_kind::normal: return "normal";
    case input_kind::heavy_tailed: return "heavy_tailed";
    case input_kind::ties: return "ties";
    case input_kind::all_equal: return "all_equal";
    case input_kind::with_zeros: return "with_zeros";
    case input_kind::denormals: return "denormals";
    case input_kind::narrow_range: return "narrow_range";
    case input_kind::integers: return "integers";
    case input_kind::levels_256: return "levels_256";
  }
  return "?";
}

/// Sizes that hit the edges: empty, one element, word and byte boundaries, and larger.
inline constexpr std::size_t edge_sizes[] = {0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 100, 127, 128, 129, 1000, 4095, 4096, 4097, 10007};

/// Tensor sizes like a network's layers: big weights, tiny biases and norms, some empty.
inline std::vector<std::size_t> layer_sizes(std::size_t layers, std::size_t big, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < layers; ++i) {
    switch (rng() % 5) {
      case 0: sizes.push_back(big + rng() % 5000); break;
      case 1: sizes.push_back(rng() % 64); break;
      case 2: sizes.push_back(0); break;
      default: sizes.push_back(1 + rng() % 3000); break;
    }
  }
  return sizes;
}

template <class T>
std::vector<T> make_input(input_kind kind, std::size_t d, std::uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(kind));
  std::vector<T> x(d);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::student_t_distribution<double> student(3.0);
  std::uniform_int_distribution<int> coin(0, 1);
  const auto sign = [&] { return coin(rng) ? T(1) : T(-1); };
  for (std::size_t i = 0; i < d; ++i) {
    switch (kind) {
      case input_kind::normal: x[i] = static_cast<T>(normal(rng)); break;
      case input_kind::heavy_tailed: x[i] = static_cast<T>(student(rng)); break;
      case input_kind::ties: x[i] = sign() * static_cast<T>(std::uniform_int_distribution<int>(0, 3)(rng)) / T(4); break;
      case input_kind::all_equal: x[i] = sign() * T(0.75); break;
      case input_kind::with_zeros:
        x[i] = coin(rng) ? static_cast<T>(normal(rng)) : (coin(rng) ? T(0) : -T(0));
        break;
      case input_kind::denormals:
        x[i] = coin(rng) ? sign() * std::numeric_limits<T>::denorm_min() *
                               static_cast<T>(std::uniform_int_distribution<int>(0, 1000)(rng))
                         : T(0);
        break;
      case input_kind::narrow_range:
        x[i] = sign() * static_cast<T>(1.0 + 0.00003 * std::uniform_real_distribution<double>(0.0, 1.0)(rng));
        break;
      case input_kind::integers: x[i] = static_cast<T>(std::uniform_int_distribution<int>(-8, 8)(rng)); break;
      case input_kind::levels_256: {
        const double level = std::round(std::clamp(normal(rng), -4.0, 4.0) * 32.0);  // 257 values in [-4, 4]
        x[i] = static_cast<T>(level / 32.0);
        break;
      }
    }
  }
  return x;
}

/// The unsigned integer as wide as T, and the bits of a value.
template <class T>
using bits_of = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

template <class T>
bits_of<T> bits(T v) {
  return std::bit_cast<bits_of<T>>(v);
}

/// Bitwise equality of two float vectors (NaN == NaN with the same bits; -0 != +0).
template <class T>
bool same_bits(std::span<const T> a, std::span<const T> b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (bits(a[i]) != bits(b[i])) return false;
  return true;
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return same_bits(std::span<const T>(a), std::span<const T>(b));
}

/// Equality of computed results: the same bits, or both NaN. Which NaN an arithmetic
/// operation with NaN operands returns (sign, payload) depends on operand order, which C++
/// lets the compiler swap for commutative operations; copied values use same_bits.
template <class T>
bool same_result(T a, T b) {
  return bits(a) == bits(b) || (std::isnan(a) && std::isnan(b));
}
template <class T>
bool same_result(std::span<const T> a, std::span<const T> b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same_result(a[i], b[i])) return false;
  return true;
}
template <class T>
bool same_result(const std::vector<T>& a, const std::vector<T>& b) {
  return same_result(std::span<const T>(a), std::span<const T>(b));
}

/// The dense vector a payload decodes to: zeros + decompress_add.
template <class T, class P>
std::vector<T> densify(const P& p, std::size_t d) {
  std::vector<T> out(d, T(0));
  p.decompress_add(std::span<T>(out), T(1));
  return out;
}

/// ||a - b||^2 and ||a||^2 in long double, for checking bounds with little rounding.
template <class T>
long double squared_distance(std::span<const T> a, std::span<const T> b) {
  long double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const long double diff = static_cast<long double>(a[i]) - static_cast<long double>(b[i]);
    s += diff * diff;
  }
  return s;
}
template <class T>
long double squared_norm_ld(std::span<const T> a) {
  long double s = 0;
  for (const T v : a) s += static_cast<long double>(v) * static_cast<long double>(v);
  return s;
}

}  // namespace gradcomp_test
