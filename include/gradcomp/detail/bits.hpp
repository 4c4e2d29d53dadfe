#pragma once
// Bit-level helpers shared by all back ends: magnitude keys, checked size arithmetic,
// index-type checks.
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../error.hpp"
#include "host_device.hpp"

namespace gradcomp::detail {

/// The unsigned integer with the same width as T.
template <class T>
using uint_of = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

/// The magnitude key of x: its bit pattern with the sign bit cleared. For non-negative
/// IEEE values integer order equals value order, so keys order elements by |x|:
/// +0 = -0 < denormals < normals < +Inf < NaN. Top-k ranks by this key (so a NaN is
/// always selected and shows up at the receiver instead of hiding in a residual) and
/// radix select works on it directly.
template <class T>
GRADCOMP_HD constexpr uint_of<T> magnitude_key(T x) noexcept {
  using U = uint_of<T>;
  constexpr U sign = U{1} << (sizeof(T) * 8 - 1);
  return std::bit_cast<U>(x) & static_cast<U>(~sign);
}

/// hard_threshold's rule as a magnitude-key bound: !(fabs(double(x)) < lambda) for x of type
/// T iff magnitude_key(x) >= threshold_key<T>(lambda) (lambda >= 0, not NaN). For float this
/// is the key of the smallest float >= lambda (no float lies strictly between a float below
/// lambda and that one). Every back end keeps exactly these keys.
template <class T>
uint_of<T> threshold_key(double lambda) {
  if constexpr (sizeof(T) == 8) {
    return magnitude_key(lambda);
  } else {
    float t = static_cast<float>(lambda);
    if (static_cast<double>(t) < lambda) t = std::nextafter(t, std::numeric_limits<float>::infinity());
    return magnitude_key(t);
  }
}

/// a * b, or fail(where, what) if it overflows std::size_t.
inline std::size_t checked_mul(std::size_t a, std::size_t b, const char* where, const char* what) {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a)
    fail(where, what, " overflows size_t (", a, " * ", b, ")");
  return a * b;
}

/// a + b, or fail(where, what) if it overflows std::size_t.
inline std::size_t checked_add(std::size_t a, std::size_t b, const char* where, const char* what) {
  if (b > std::numeric_limits<std::size_t>::max() - a)
    fail(where, what, " overflows size_t (", a, " + ", b, ")");
  return a + b;
}

/// Fails unless every index below dim fits in Index.
template <class Index>
void check_index_fits(std::size_t dim, const char* where) {
  static_assert(std::is_unsigned_v<Index>);
  if (dim > 0 && dim - 1 > std::numeric_limits<Index>::max())
    fail(where, "dimension d = ", dim, " does not fit the index type (", sizeof(Index) * 8,
         "-bit, largest index ", std::numeric_limits<Index>::max(),
         "); use sparse_vector<T, std::uint64_t>");
}

/// An upper bound on the exact product d * a * b of non-negative factors: 0 when a factor
/// is 0, otherwise the rounded product moved up two ulps (each multiplication rounds by at
/// most half an ulp), so a product that underflows still gives a positive bound.
inline double product_upper_bound(double d, double a, double b) {
  if (d == 0.0 || a == 0.0 || b == 0.0) return 0.0;
  const double inf = std::numeric_limits<double>::infinity();
  return std::nextafter(std::nextafter(d * a * b, inf), inf);
}

/// Number of 64-bit words that hold n bits.
constexpr std::size_t words_for_bits(std::size_t n) noexcept { return n / 64 + (n % 64 != 0); }

/// Number of bytes that hold n bits.
constexpr std::size_t bytes_for_bits(std::size_t n) noexcept { return n / 8 + (n % 8 != 0); }

}  // namespace gradcomp::detail
