// Unit tests for the sparsifiers: top_k, hard_threshold, random_k, unbiased_random_k.
//
// Deterministic compressors are checked against brute-force reference implementations
// written here (full sorts, plain comparisons), on every input kind of test_support.hpp,
// every edge size, with NaN / +-Inf placed at random. Random compressors are checked for
// the "every worker" property, wire round trips, and statistically (fixed seed lists, so
// every run draws the same numbers; tolerances are ~5 sigma of the known distribution).
#include <doctest/doctest.h>

#include <gradcomp/gradcomp.hpp>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "error_message.hpp"
#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

using gt::contains;
using gt::error_message;

// ---------------------------------------------------------------------------------------
// Helpers local to this file.

using gradcomp_test::bits;
using gradcomp_test::bits_of;

/// |x| as an unsigned key: the bit pattern with the sign bit cleared (the ranking the
/// contract specifies for top_k: NaN > +Inf > normals > denormals > +0 == -0).
template <class T>
std::uint64_t brute_key(T v) {
  const std::uint64_t b = bits(v);
  const std::uint64_t sign = std::uint64_t{1} << (sizeof(T) * 8 - 1);
  return b & ~sign;
}

/// Brute-force top-k: sort all (key desc, index asc), take the first min(k, d), return
/// their indices ascending.
template <class T>
std::vector<std::size_t> brute_top_k(const std::vector<T>& x, std::size_t k) {
  std::vector<std::pair<std::uint64_t, std::size_t>> all;
  all.reserve(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) all.emplace_back(brute_key(x[i]), i);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return a.second < b.second;
  });
  const std::size_t kept = std::min(k, x.size());
  std::vector<std::size_t> idx;
  for (std::size_t j = 0; j < kept; ++j) idx.push_back(all[j].second);
  std::sort(idx.begin(), idx.end());
  return idx;
}

/// Brute-force hard threshold: {i : !(|x_i| < lambda)}, compared in long double (exact for
/// float and double inputs and a double lambda).
template <class T>
std::vector<std::size_t> brute_threshold(const std::vector<T>& x, double lambda) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!(std::fabs(static_cast<long double>(x[i])) < static_cast<long double>(lambda))) idx.push_back(i);
  return idx;
}

template <class Index>
std::vector<std::size_t> as_size_t(const std::vector<Index>& v) {
  return std::vector<std::size_t>(v.begin(), v.end());
}

template <class Index>
bool strictly_ascending_below(const std::vector<Index>& idx, std::size_t d) {
  for (std::size_t j = 0; j < idx.size(); ++j) {
    if (static_cast<std::size_t>(idx[j]) >= d) return false;
    if (j > 0 && !(idx[j - 1] < idx[j])) return false;
  }
  return true;
}

/// values[j] has exactly the bits of x[indices[j]].
template <class T, class Index>
bool values_are_exact(const std::vector<T>& x, const std::vector<Index>& idx, const std::vector<T>& values) {
  if (idx.size() != values.size()) return false;
  for (std::size_t j = 0; j < idx.size(); ++j)
    if (static_cast<std::size_t>(idx[j]) >= x.size() || bits(values[j]) != bits(x[idx[j]])) return false;
  return true;
}

template <class T>
bool all_finite(const std::vector<T>& x) {
  return std::all_of(x.begin(), x.end(), [](T v) { return std::isfinite(v); });
}

/// Puts NaNs (with varied payloads and signs) and +-Inf at random positions of x.
template <class T>
void inject_specials(std::vector<T>& x, std::uint64_t seed) {
  if (x.empty()) return;
  std::mt19937_64 rng(seed ^ 0x5bd1e995ULL);
  const std::size_t count = 1 + rng() % std::max<std::size_t>(1, std::min<std::size_t>(x.size() / 4, 12));
  using U = bits_of<T>;
  constexpr U sign = U{1} << (sizeof(T) * 8 - 1);
  const U quiet_nan = bits(std::numeric_limits<T>::quiet_NaN());
  for (std::size_t c = 0; c < count; ++c) {
    const std::size_t i = rng() % x.size();
    const U payload_mask = (sizeof(T) == 4) ? U(0x3fffff) : U(0x7ffffffffffffULL);
    switch (rng() % 5) {
      case 0: x[i] = std::numeric_limits<T>::quiet_NaN(); break;
      case 1: x[i] = std::bit_cast<T>(static_cast<U>(quiet_nan | (static_cast<U>(rng()) & payload_mask) | sign)); break;
      case 2: x[i] = std::bit_cast<T>(static_cast<U>(quiet_nan | (static_cast<U>(rng()) & payload_mask))); break;
      case 3: x[i] = std::numeric_limits<T>::infinity(); break;
      default: x[i] = -std::numeric_limits<T>::infinity(); break;
    }
  }
}

/// The k values every sparsifier is tried with for dimension d (k = 0 removed; "large"
/// ones far beyond d).
std::vector<std::size_t> k_values(std::size_t d) {
  std::vector<std::size_t> ks = {1, 2, d / 2, d - 1, d, d + 5, std::size_t{1} << 40,
                                 std::numeric_limits<std::size_t>::max()};
  std::vector<std::size_t> out;
  for (std::size_t k : ks)
    if (k != 0 && std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  return out;
}

/// Number of seeds for an edge size: many for small sizes, fewer for the big ones.
std::uint64_t seeds_for(std::size_t d) { return d <= 129 ? 4 : (d <= 1000 ? 2 : 1); }



std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Population variance of the squares of x (for the variance of a sampled sum of squares).
template <class T>
long double variance_of_squares(const std::vector<T>& x) {
  long double mean = 0;
  for (T v : x) mean += static_cast<long double>(v) * v;
  mean /= static_cast<long double>(x.size());
  long double var = 0;
  for (T v : x) {
    const long double a = static_cast<long double>(v) * v - mean;
    var += a * a;
  }
  return var / static_cast<long double>(x.size());
}

// Compile-time categories.
static_assert(gc::contractive_compressor<gc::top_k, float> && gc::contractive_compressor<gc::top_k, double>);
static_assert(!gc::absolute_compressor<gc::top_k, float> && !gc::unbiased_compressor<gc::top_k, float>);
static_assert(gc::absolute_compressor<gc::hard_threshold, float> && gc::absolute_compressor<gc::hard_threshold, double>);
static_assert(!gc::contractive_compressor<gc::hard_threshold, float>);
static_assert(gc::contractive_compressor<gc::random_k, float> && !gc::unbiased_compressor<gc::random_k, float>);
static_assert(gc::unbiased_compressor<gc::unbiased_random_k, double> &&
              !gc::contractive_compressor<gc::unbiased_random_k, double>);
static_assert(gc::seeded_compressor<gc::random_k> && gc::seeded_compressor<gc::unbiased_random_k>);
static_assert(!gc::seeded_compressor<gc::top_k> && !gc::seeded_compressor<gc::hard_threshold>);
static_assert(std::is_same_v<gc::payload_t<gc::top_k, float>, gc::sparse_vector<float>>);
static_assert(std::is_same_v<gc::payload_t<gc::hard_threshold, double>, gc::sparse_vector<double>>);
static_assert(std::is_same_v<gc::payload_t<gc::random_k, float>, gc::seeded_sparse_vector<float>>);
static_assert(std::is_same_v<gc::payload_t<gc::unbiased_random_k, double>, gc::seeded_sparse_vector<double>>);

}  // namespace

// =======================================================================================
// top_k

TEST_CASE_TEMPLATE("top_k: matches brute force on every input kind, size and k, with contraction", T, float, double) {
  gc::sparse_vector<T> out;  // reused across cases: compress must reset it
  out.dim = 3;
  out.indices = {0, 1, 2};
  out.values = {T(9), T(9), T(9)};
  std::size_t cases = 0;
  for (const auto kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      for (std::uint64_t seed = 0; seed < seeds_for(d); ++seed) {
        for (const bool specials : {false, true}) {
          std::vector<T> x = gt::make_input<T>(kind, d, 1000 + seed);
          if (specials) inject_specials(x, seed * 7919 + d);
          const bool finite = all_finite(x);
          const long double norm = gt::squared_norm_ld(std::span<const T>(x));
          for (const std::size_t k : k_values(d)) {
            const std::string kind_name = gt::to_string(kind);
            CAPTURE(kind_name);
            CAPTURE(d);
            CAPTURE(seed);
            CAPTURE(specials);
            CAPTURE(k);
            ++cases;
            const gc::top_k c{.k = k};
            gc::compress(gc::exec::seq, c, x, out);
            const std::size_t kept = std::min(k, d);
            REQUIRE(out.dim == d);
            REQUIRE(out.indices.size() == kept);
            REQUIRE(out.values.size() == kept);
            CHECK(strictly_ascending_below(out.indices, d));
            CHECK(as_size_t(out.indices) == brute_top_k(x, k));
            CHECK(values_are_exact(x, out.indices, out.values));
            CHECK(gc::sent_elements(out) == kept);
            // delta(d) = min(k, d) / d exactly.
            const double delta = c.delta(d);
            if (d > 0) CHECK(delta == static_cast<double>(kept) / static_cast<double>(d));
            if (finite) {
              const std::vector<T> dense = gt::densify<T>(out, d);
              const long double err = gt::squared_distance(std::span<const T>(x), std::span<const T>(dense));
              const long double exact_factor =
                  d == 0 ? 0.0L : static_cast<long double>(d - kept) / static_cast<long double>(d);
              CHECK(err <= exact_factor * norm * (1.0L + 1e-12L));
              CHECK(err <= (1.0L - static_cast<long double>(delta)) * norm * (1.0L + 1e-12L));
              if (kept == d) CHECK(err == 0.0L);
            }
          }
        }
      }
    }
  }
  CHECK(cases > 3000);
}

TEST_CASE_TEMPLATE("top_k: random sizes and k with specials, equal magnitudes, signed zeros", T, float, double) {
  std::mt19937_64 rng(20240601);
  gc::sparse_vector<T> out;
  for (int iter = 0; iter < 1500; ++iter) {
    const std::size_t d = rng() % 300;
    const std::size_t k = 1 + rng() % (d + 10);
    std::vector<T> x(d);
    const int mode = static_cast<int>(rng() % 4);
    for (std::size_t i = 0; i < d; ++i) {
      switch (mode) {
        case 0: x[i] = (rng() & 1) ? T(0) : -T(0); break;                       // only signed zeros
        case 1: x[i] = (rng() & 1) ? T(2.5) : T(-2.5); break;                    // all equal magnitude
        case 2: x[i] = static_cast<T>(static_cast<int>(rng() % 5) - 2); break;  // tiny integer alphabet
        default: x[i] = static_cast<T>(std::ldexp(static_cast<double>(rng() % 1000) - 500.0, -static_cast<int>(rng() % 40)));
      }
    }
    if (rng() % 3 == 0) inject_specials(x, rng());
    CAPTURE(iter);
    CAPTURE(mode);
    CAPTURE(d);
    CAPTURE(k);
    gc::compress(gc::exec::seq, gc::top_k{.k = k}, std::span<const T>(x), out);
    REQUIRE(out.indices.size() == std::min(k, d));
    CHECK(as_size_t(out.indices) == brute_top_k(x, k));
    CHECK(values_are_exact(x, out.indices, out.values));
    if (mode <= 1 && all_finite(x)) {
      // Every magnitude ties: the first min(k, d) indices are kept.
      bool prefix = true;
      for (std::size_t j = 0; j < out.indices.size(); ++j) prefix = prefix && out.indices[j] == j;
      CHECK(prefix);
    }
  }
}

TEST_CASE_TEMPLATE("top_k: explicit tie, zero and special-value cases", T, float, double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  gc::sparse_vector<T> out;

  SUBCASE("-0 and +0 tie: lower indices win, bits preserved") {
    const std::vector<T> x = {-T(0), T(0), -T(0), T(0)};
    gc::compress(gc::exec::seq, gc::top_k{.k = 2}, x, out);
    CHECK(out.indices == std::vector<std::uint32_t>{0, 1});
    REQUIRE(out.values.size() == 2);
    CHECK(std::signbit(out.values[0]));
    CHECK(!std::signbit(out.values[1]));
    CHECK(values_are_exact(x, out.indices, out.values));
  }
  SUBCASE("+0 does not outrank the smallest denormal") {
    const std::vector<T> x = {T(0), -T(0), -std::numeric_limits<T>::denorm_min(), T(0)};
    gc::compress(gc::exec::seq, gc::top_k{.k = 1}, x, out);
    CHECK(out.indices == std::vector<std::uint32_t>{2});
  }
  SUBCASE("NaN outranks +Inf which outranks the largest finite") {
    const std::vector<T> x = {std::numeric_limits<T>::max(), -inf, T(1), nan, -std::numeric_limits<T>::max()};
    gc::compress(gc::exec::seq, gc::top_k{.k = 1}, x, out);
    CHECK(out.indices == std::vector<std::uint32_t>{3});
    CHECK(std::isnan(out.values.at(0)));
    gc::compress(gc::exec::seq, gc::top_k{.k = 2}, x, out);
    CHECK(out.indices == std::vector<std::uint32_t>{1, 3});
    gc::compress(gc::exec::seq, gc::top_k{.k = 3}, x, out);
    CHECK(out.indices == std::vector<std::uint32_t>{0, 1, 3});  // max and -max tie: lower index
    CHECK(values_are_exact(x, out.indices, out.values));
  }
  SUBCASE("ties at the k-th magnitude straddle the cut") {
    const std::vector<T> x = {T(1), T(-3), T(2), T(-2), T(2), T(0.5), T(-2)};
    gc::compress(gc::exec::seq, gc::top_k{.k = 3}, x, out);
    CHECK(out.indices == std::vector<std::uint32_t>{1, 2, 3});
    gc::compress(gc::exec::seq, gc::top_k{.k = 4}, x, out);
    CHECK(out.indices == std::vector<std::uint32_t>{1, 2, 3, 4});
    CHECK(values_are_exact(x, out.indices, out.values));
  }
  SUBCASE("empty input") {
    out.dim = 4;
    out.indices = {1};
    out.values = {T(1)};
    gc::compress(gc::exec::seq, gc::top_k{.k = 3}, std::vector<T>{}, out);
    CHECK(out.dim == 0);
    CHECK(out.indices.empty());
    CHECK(out.values.empty());
  }
}

TEST_CASE_TEMPLATE("top_k: wire round trip of the payload", T, float, double) {
  for (const std::size_t d : {0u, 1u, 65u, 1000u}) {
    for (const std::size_t k : {1u, 7u, 2000u}) {
      auto x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 5);
      inject_specials(x, d + k);
      gc::sparse_vector<T> out;
      gc::compress(gc::exec::seq, gc::top_k{.k = k}, x, out);
      const auto bytes = gc::encode(out);
      CHECK(bytes.size() == gc::wire_bytes(out));
      const auto back = gc::decode<gc::sparse_vector<T>>(bytes);
      CHECK(back.dim == out.dim);
      CHECK(back.indices == out.indices);
      CHECK(gt::same_bits(back.values, out.values));
    }
  }
}

// =======================================================================================
// hard_threshold

TEST_CASE_TEMPLATE("hard_threshold: matches brute force and the absolute bound on every input", T, float, double) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> fixed_lambdas = {0.0,
                                             -0.0,
                                             static_cast<double>(std::numeric_limits<float>::denorm_min()),
                                             static_cast<double>(std::numeric_limits<T>::denorm_min()) * 7.0,
                                             1e-30,
                                             0.25,
                                             0.5,
                                             0.75,
                                             1.0,
                                             1.00001,
                                             3.0,
                                             gc::hard_threshold::matching_top_k(10).lambda,
                                             gc::hard_threshold::matching_top_k(1000).lambda,
                                             1e30,
                                             inf};
  gc::sparse_vector<T> out;
  std::size_t cases = 0;
  for (const auto kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      for (std::uint64_t seed = 0; seed < seeds_for(d); ++seed) {
        for (const bool specials : {false, true}) {
          std::vector<T> x = gt::make_input<T>(kind, d, 2000 + seed);
          if (specials) inject_specials(x, seed * 104729 + d);
          const bool finite = all_finite(x);
          std::vector<double> lambdas = fixed_lambdas;
          // Lambdas at, just above and just below data values (just above a float value is
          // a double that rounds back to it if converted to float).
          std::mt19937_64 rng(seed + 31 * d);
          for (int j = 0; j < 3 && d > 0; ++j) {
            const double a = std::fabs(static_cast<double>(x[rng() % d]));
            if (!std::isfinite(a)) continue;
            lambdas.push_back(a);
            lambdas.push_back(std::nextafter(a, inf));
            if (a > 0) lambdas.push_back(std::nextafter(a, 0.0));
          }
          for (const double lambda : lambdas) {
            const std::string kind_name = gt::to_string(kind);
            CAPTURE(kind_name);
            CAPTURE(d);
            CAPTURE(seed);
            CAPTURE(specials);
            CAPTURE(lambda);
            ++cases;
            const gc::hard_threshold c{.lambda = lambda};
            gc::compress(gc::exec::seq, c, x, out);
            REQUIRE(out.dim == d);
            const auto expected = brute_threshold(x, lambda);
            CHECK(as_size_t(out.indices) == expected);
            CHECK(strictly_ascending_below(out.indices, d));
            CHECK(values_are_exact(x, out.indices, out.values));
            if (lambda == 0.0) CHECK(out.indices.size() == d);  // keeps everything, zeros included
            if (finite) {
              const std::vector<T> dense = gt::densify<T>(out, d);
              const long double err = gt::squared_distance(std::span<const T>(x), std::span<const T>(dense));
              const long double l = lambda;
              const long double exact_bound = d == 0 ? 0.0L : static_cast<long double>(d) * l * l;
              if (d > 0 && lambda > 0)
                CHECK(err < exact_bound);
              else
                CHECK(err <= exact_bound);
              // The library's bound: d lambda^2 rounded up (so it holds even where the
              // product underflows), and not loose by more than rounding.
              const long double lib_bound = c.absolute_bound(d);
              CHECK(err <= lib_bound * (1.0L + 1e-12L));
              if (exact_bound >= std::numeric_limits<double>::min() && std::isfinite(lambda))
                CHECK(lib_bound <= exact_bound * (1.0L + 1e-12L));
            }
          }
        }
      }
    }
  }
  CHECK(cases > 3000);
}

TEST_CASE_TEMPLATE("hard_threshold: NaN, Inf, zero and infinite lambda", T, float, double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const std::vector<T> x = {T(0), -T(0), T(0.5), nan, -inf, T(-2), inf, std::numeric_limits<T>::denorm_min(),
                            -nan};
  gc::sparse_vector<T> out;

  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = 0.0}, x, out);
  CHECK(out.indices == std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(values_are_exact(x, out.indices, out.values));

  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = std::numeric_limits<double>::infinity()}, x, out);
  CHECK(out.indices == std::vector<std::uint32_t>{3, 4, 6, 8});  // only +-Inf and NaN
  CHECK(values_are_exact(x, out.indices, out.values));

  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = 1.0}, x, out);
  CHECK(out.indices == std::vector<std::uint32_t>{3, 4, 5, 6, 8});  // NaN kept
  CHECK(values_are_exact(x, out.indices, out.values));

  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = 0.5}, x, out);
  CHECK(out.indices == std::vector<std::uint32_t>{2, 3, 4, 5, 6, 8});  // |x| == lambda kept
}

TEST_CASE("hard_threshold: lambda is a double compared exactly with float inputs") {
  const float v = 0.1f;  // 0.100000001490116...
  const double vd = static_cast<double>(v);
  const std::vector<float> x = {v, -v, 0.05f};
  gc::sparse_vector<float> out;

  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = vd}, x, out);
  CHECK(out.indices == std::vector<std::uint32_t>{0, 1});

  // Just above the float value: a double that would round back to 0.1f as a float.
  const double above = std::nextafter(vd, 1.0);
  REQUIRE(static_cast<float>(above) == v);
  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = above}, x, out);
  CHECK(out.indices.empty());
  // The double 0.1 is below 0.1f: kept.
  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = 0.1}, x, out);
  CHECK(out.indices == std::vector<std::uint32_t>{0, 1});
  // Just below: kept.
  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = std::nextafter(vd, 0.0)}, x, out);
  CHECK(out.indices == std::vector<std::uint32_t>{0, 1});

  // Above the largest float: every finite float is dropped, Inf kept.
  const double above_max = std::nextafter(static_cast<double>(std::numeric_limits<float>::max()), 1e300);
  const std::vector<float> big = {std::numeric_limits<float>::max(), -std::numeric_limits<float>::infinity()};
  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = above_max}, big, out);
  CHECK(out.indices == std::vector<std::uint32_t>{1});
  // A lambda below the smallest float denormal keeps every non-zero float.
  const std::vector<float> tiny = {std::numeric_limits<float>::denorm_min(), 0.0f};
  gc::compress(gc::exec::seq,
               gc::hard_threshold{.lambda = static_cast<double>(std::numeric_limits<float>::denorm_min()) / 2.0},
               tiny, out);
  CHECK(out.indices == std::vector<std::uint32_t>{0});
  gc::compress(gc::exec::seq,
               gc::hard_threshold{.lambda = std::nextafter(static_cast<double>(std::numeric_limits<float>::denorm_min()), 1.0)},
               tiny, out);
  CHECK(out.indices.empty());
}

TEST_CASE("hard_threshold: absolute_bound does not underflow below the error it bounds") {
  // lambda = 1e-200 drops x = 9e-201, an error of 8.1e-401: below the double range, but not
  // zero. A bound of 0 would claim that hard_threshold is lossless here.
  const gc::hard_threshold h{.lambda = 1e-200};
  const std::vector<double> x = {9e-201, 2e-200};
  gc::sparse_vector<double> out;
  gc::compress(gc::exec::seq, h, x, out);
  CHECK(out.indices == std::vector<std::uint32_t>{1});
  const std::vector<double> dense = gt::densify<double>(out, x.size());
  const long double err = gt::squared_distance(std::span<const double>(x), std::span<const double>(dense));
  REQUIRE(err > 0.0L);
  const double bound = h.absolute_bound(x.size());
  CAPTURE(bound);
  CHECK(bound > 0.0);
  CHECK(err <= static_cast<long double>(bound));
}

TEST_CASE("hard_threshold: matching_top_k") {
  for (const std::size_t k : {1u, 2u, 3u, 4u, 10u, 100u, 1000u, 12345u, 1000000u}) {
    CAPTURE(k);
    CHECK(gc::hard_threshold::matching_top_k(k).lambda == 1.0 / (2.0 * std::sqrt(static_cast<double>(k))));
  }
  CHECK(gc::hard_threshold::matching_top_k(1).lambda == 0.5);
  CHECK(gc::hard_threshold::matching_top_k(4).lambda == 0.25);
  CHECK(gc::hard_threshold::matching_top_k(100).lambda == 0.05);
  CHECK(gc::hard_threshold::matching_top_k(std::numeric_limits<std::size_t>::max()).lambda > 0.0);

  CHECK_THROWS_AS(gc::hard_threshold::matching_top_k(0), gc::error);
  const std::string msg = error_message([] { (void)gc::hard_threshold::matching_top_k(0); });
  CAPTURE(msg);
  CHECK(contains(msg, "gradcomp::"));
  CHECK(contains(msg, "k"));
  CHECK(contains(msg, "0"));
}

// =======================================================================================
// random_k / unbiased_random_k: determinism, indices, values, wire

TEST_CASE_TEMPLATE("random_k: same (seed, step) gives the same indices on independent workers", T, float, double) {
  std::size_t size_index = 0;
  for (const std::size_t d : gt::edge_sizes) {
    // Rotate through the input kinds; the workers see different gradients (only the
    // indices must agree), one of them with NaN/Inf.
    const auto kind = gt::all_input_kinds[size_index++ % std::size(gt::all_input_kinds)];
    std::vector<std::vector<T>> inputs_a, inputs_b;
    for (std::uint64_t call = 0; call < 3; ++call) {
      inputs_a.push_back(gt::make_input<T>(kind, d, 10 * call + 1));
      inputs_b.push_back(gt::make_input<T>(kind, d, 10 * call + 2));
    }
    inject_specials(inputs_a[1], d);
    for (const std::size_t k : k_values(d)) {
      for (const std::uint64_t seed : {std::uint64_t{0}, std::uint64_t{12345}, ~std::uint64_t{0}}) {
        const std::uint64_t start = seed == 12345 ? (std::uint64_t{1} << 63) + 17 : seed % 1000;
        const std::string kind_name = gt::to_string(kind);
        CAPTURE(kind_name);
        CAPTURE(d);
        CAPTURE(k);
        CAPTURE(seed);
        gc::random_k a{.k = k, .seed = seed, .step = start};
        gc::random_k b{.k = k, .seed = seed, .step = start};
        gc::seeded_sparse_vector<T> pa, pb;
        const std::size_t kept = std::min(k, d);
        for (std::uint64_t call = 0; call < 3; ++call) {
          const std::vector<T>& xa = inputs_a[call];
          const std::vector<T>& xb = inputs_b[call];
          gc::compress(gc::exec::seq, a, xa, pa);
          gc::compress(gc::exec::seq, b, std::span<const T>(xb), pb);
          CHECK(a.step == start + call + 1);
          CHECK(b.step == start + call + 1);
          CHECK(pa.step == start + call);
          CHECK(pa.seed == seed);
          REQUIRE(pa.dim == d);
          REQUIRE(pa.indices.size() == kept);
          REQUIRE(pa.values.size() == kept);
          CHECK(pa.indices == pb.indices);
          CHECK(strictly_ascending_below(pa.indices, d));
          CHECK(values_are_exact(xa, pa.indices, pa.values));
          CHECK(values_are_exact(xb, pb.indices, pb.values));
          CHECK(gc::sent_elements(pa) == kept);
          if (kept == d) {
            bool all = true;
            for (std::size_t j = 0; j < kept; ++j) all = all && pa.indices[j] == j;
            CHECK(all);
          }
          // The receiver re-derives the indices from the wire (they are not sent).
          const auto bytes = gc::encode(pa);
          CHECK(bytes.size() == gc::wire_bytes(pa));
          gc::seeded_sparse_vector<T> back;
          back.dim = 3;
          back.indices = {0, 2};
          back.values = {T(1), T(2)};
          gc::decode_into(bytes, back);
          CHECK(back.dim == pa.dim);
          CHECK(back.seed == pa.seed);
          CHECK(back.step == pa.step);
          CHECK(back.indices == pa.indices);
          CHECK(gt::same_bits(back.values, pa.values));
          CHECK(gt::same_bits(gt::densify<T>(back, d), gt::densify<T>(pa, d)));
          if (all_finite(xa)) CHECK(back == pa);
        }
      }
    }
  }
}

TEST_CASE("random_k: different steps and different seeds give different index sets") {
  struct config {
    std::size_t d, k;
  };
  // C(d, k) is astronomically larger than the number of draws squared in each config.
  for (const config cfg : {config{100, 10}, config{64, 32}, config{1000, 5}, config{10007, 3}, config{129, 64}}) {
    CAPTURE(cfg.d);
    CAPTURE(cfg.k);
    const std::vector<float> x = gt::make_input<float>(gt::input_kind::normal, cfg.d, 3);
    gc::seeded_sparse_vector<float> out;

    gc::random_k by_step{.k = cfg.k, .seed = 77, .step = 0};
    std::set<std::vector<std::uint32_t>> seen_steps;
    for (int s = 0; s < 40; ++s) {
      gc::compress(gc::exec::seq, by_step, x, out);
      seen_steps.insert(out.indices);
    }
    CHECK(seen_steps.size() == 40);

    std::set<std::vector<std::uint32_t>> seen_seeds;
    for (std::uint64_t seed = 0; seed < 40; ++seed) {
      gc::random_k c{.k = cfg.k, .seed = seed, .step = 5};
      gc::compress(gc::exec::seq, c, x, out);
      seen_seeds.insert(out.indices);
    }
    CHECK(seen_seeds.size() == 40);
  }
}

TEST_CASE_TEMPLATE("unbiased_random_k: values are T(d/k) * x_i at the shared indices", T, float, double) {
  for (const std::size_t d : gt::edge_sizes) {
    for (const std::size_t k : k_values(d)) {
      CAPTURE(d);
      CAPTURE(k);
      std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, d + 1);
      inject_specials(x, k);
      gc::unbiased_random_k u{.k = k, .seed = 99, .step = 4};
      gc::random_k r{.k = k, .seed = 99, .step = 4};
      gc::seeded_sparse_vector<T> pu, pr;
      gc::compress(gc::exec::seq, u, x, pu);
      gc::compress(gc::exec::seq, r, x, pr);
      CHECK(u.step == 5);
      const std::size_t kept = std::min(k, d);
      REQUIRE(pu.indices.size() == kept);
      REQUIRE(pu.values.size() == kept);
      CHECK(pu.indices == pr.indices);  // scaling does not change the selection
      CHECK(strictly_ascending_below(pu.indices, d));
      const T scale = kept == 0 ? T(1) : static_cast<T>(static_cast<double>(d) / static_cast<double>(kept));
      if (k >= d) CHECK(scale == T(1));
      std::vector<T> expected(kept);
      for (std::size_t j = 0; j < kept; ++j) expected[j] = scale * x[pu.indices[j]];
      CHECK(gt::same_bits(pu.values, expected));
      // Round trip.
      const auto back = gc::decode<gc::seeded_sparse_vector<T>>(gc::encode(pu));
      CHECK(back.indices == pu.indices);
      CHECK(gt::same_bits(back.values, pu.values));
    }
  }
}

TEST_CASE_TEMPLATE("unbiased_random_k: a finite x_i whose d/k scaling overflows is sent as +-max, never inf", T, float,
                   double) {
  // The input: 2 of 4 kept, scale 2, so max(T) and -max(T) would become +-inf.
  const T mx = std::numeric_limits<T>::max();
  const T inf = std::numeric_limits<T>::infinity();
  const std::vector<T> x{mx, -mx, T(1), T(2)};
  for (std::uint64_t step = 0; step < 40; ++step) {
    CAPTURE(step);
    gc::unbiased_random_k u{.k = 2, .seed = 17, .step = step};
    gc::seeded_sparse_vector<T> p;
    gc::compress(gc::exec::seq, u, x, p);
    REQUIRE(p.indices.size() == 2);
    for (std::size_t j = 0; j < 2; ++j) {
      const T v = x[p.indices[j]];
      const T want = std::fabs(v) == mx ? v : T(2) * v;  // saturated to +-max, else T(d/k) * x_i
      CHECK(gt::bits(p.values[j]) == gt::bits(want));
    }
    for (const T v : gt::densify<T>(p, 4)) CHECK(std::isfinite(v));
    // And through the wire.
    for (const T v : gt::densify<T>(gc::decode<gc::seeded_sparse_vector<T>>(gc::encode(p)), 4)) CHECK(std::isfinite(v));
  }
  // Only values beyond max / T(d/k) saturate; one just below it is scaled exactly. d/k = 4.
  const T just_fits = std::nextafter(mx / T(4), T(0));  // times 4 (exact): the value below max
  const T just_over = std::nextafter(mx / T(4), inf);   // times 4: 2^(max exponent + 1), inf
  std::vector<T> y(8, just_fits);
  for (std::size_t i = 1; i < y.size(); i += 2) y[i] = -just_over;
  gc::unbiased_random_k u{.k = 2, .seed = 3};
  gc::seeded_sparse_vector<T> p;
  for (int call = 0; call < 20; ++call) {
    gc::compress(gc::exec::seq, u, y, p);
    for (std::size_t j = 0; j < 2; ++j) {
      if (p.indices[j] % 2 == 0)
        CHECK(p.values[j] == std::nextafter(mx, T(0)));
      else
        CHECK(p.values[j] == -mx);
    }
  }
  // Non-finite inputs are sent as they are (NaN stays NaN, inf stays inf), as every sparsifier does.
  const std::vector<T> specials{inf, -inf, std::numeric_limits<T>::quiet_NaN(), T(1)};
  gc::unbiased_random_k all_but_one{.k = 3, .seed = 1};
  for (int call = 0; call < 20; ++call) {
    gc::compress(gc::exec::seq, all_but_one, specials, p);
    for (std::size_t j = 0; j < 3; ++j) {
      const T v = specials[p.indices[j]];
      if (std::isnan(v))
        CHECK(std::isnan(p.values[j]));
      else
        CHECK(p.values[j] == (std::isinf(v) ? v : static_cast<T>(4.0 / 3.0) * v));
    }
  }
  // random_k (unscaled) sends x_i as it is: max(T) stays max(T).
  gc::random_k r{.k = 2, .seed = 17};
  gc::seeded_sparse_vector<T> pr;
  gc::compress(gc::exec::seq, r, x, pr);
  for (std::size_t j = 0; j < 2; ++j) CHECK(gt::bits(pr.values[j]) == gt::bits(x[pr.indices[j]]));
}

namespace {

/// Random-k's index set by its definition, with nothing clever: hash every index, sort by
/// hash, keep the first k, sort them.
std::vector<std::uint64_t> k_smallest_hashes(std::uint64_t n, std::uint64_t k, std::uint64_t seed, std::uint64_t step) {
  const gc::detail::counter_stream stream(seed, step);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> by_hash(n);
  for (std::uint64_t i = 0; i < n; ++i) by_hash[i] = {gc::detail::random_k_hash(stream, i), i};
  std::sort(by_hash.begin(), by_hash.end());
  std::vector<std::uint64_t> kept(k);
  for (std::uint64_t j = 0; j < k; ++j) kept[j] = by_hash[j].second;
  std::sort(kept.begin(), kept.end());
  return kept;
}

std::uint64_t fnv1a_of(const std::vector<std::uint64_t>& v) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::uint64_t x : v)
    for (int b = 0; b < 8; ++b) h = (h ^ ((x >> (8 * b)) & 0xff)) * 0x100000001b3ULL;
  return h;
}

}  // namespace

TEST_CASE("random_k: the index set is the k indices with the smallest hashes") {
  // Hashes of distinct indices are distinct (an odd multiplier and a bijective mixer).
  {
    const gc::detail::counter_stream stream(5, 6);
    std::set<std::uint64_t> seen;
    for (std::uint64_t i = 0; i < 200000; ++i) seen.insert(gc::detail::random_k_hash(stream, i));
    CHECK(seen.size() == 200000);
  }
  // Against the definition on many random (n, k, seed, step), 32- and 64-bit indices.
  std::mt19937_64 rng(2024);
  for (int t = 0; t < 1500; ++t) {
    const std::uint64_t n = 1 + rng() % (t % 10 == 0 ? 70000 : 300);
    const std::uint64_t k = rng() % (n + 1);
    const std::uint64_t seed = rng(), step = rng();
    CAPTURE(n);
    CAPTURE(k);
    const std::vector<std::uint64_t> want = k_smallest_hashes(n, k, seed, step);
    std::vector<std::uint32_t> a;
    std::vector<std::uint64_t> b;
    gc::detail::shared_random_indices(n, k, seed, step, a);
    gc::detail::shared_random_indices(n, k, seed, step, b);
    REQUIRE(b == want);
    REQUIRE(std::equal(a.begin(), a.end(), want.begin(), want.end()));
  }
}

TEST_CASE("random_k: the indices of (d, k, seed, step) are pinned (wire version 2)") {
  // The wire carries (seed, step, k) and the receiver regenerates the indices: which indices a
  // tuple means is a contract between versions and back ends. FNV-1a 64 of the indices (as
  // little-endian u64), the first and the last; the small cases also against the definition.
  struct golden {
    std::uint64_t n, k, seed, step, fnv, first, last;
  };
  const golden cases[] = {
      {100ULL, 1ULL, 0x123456789abcdefULL, 0x5ULL, 0xb0f1bfe9d09fe8bdULL, 56ULL, 56ULL},
      {100ULL, 10ULL, 0x7ULL, 0x0ULL, 0xb870b9b57baf131bULL, 4ULL, 89ULL},
      {1000ULL, 999ULL, 0x1ULL, 0x2ULL, 0x195bd9bdfe62d0cfULL, 0ULL, 999ULL},
      {1048576ULL, 100ULL, 0x2aULL, 0x7ULL, 0x3c649c76058c3294ULL, 7687ULL, 1035911ULL},
      {1048576ULL, 5000ULL, 0x2aULL, 0x8ULL, 0x94a7c816a50043a8ULL, 358ULL, 1048163ULL},
      {16777216ULL, 3ULL, 0xffffffffffffffffULL, 0x8000000000000000ULL, 0x6a06b2003cb971a0ULL, 4604043ULL, 13043309ULL},
      {5000000ULL, 200ULL, 0x9ULL, 0x9ULL, 0xadc3088412afa4c4ULL, 4007ULL, 4986399ULL},
      {5000000ULL, 4000ULL, 0x9ULL, 0xaULL, 0x37356c72e771eb7aULL, 3477ULL, 4999733ULL},
      {70000ULL, 35000ULL, 0xbULL, 0xcULL, 0x6be2354a994cadf1ULL, 5ULL, 69997ULL},
  };
  for (const golden& g : cases) {
    CAPTURE(g.n);
    CAPTURE(g.k);
    std::vector<std::uint64_t> out;
    gc::detail::shared_random_indices(g.n, g.k, g.seed, g.step, out);
    REQUIRE(out.size() == g.k);
    CHECK(fnv1a_of(out) == g.fnv);
    CHECK(out.front() == g.first);
    CHECK(out.back() == g.last);
    if (g.n <= 5000000) CHECK(out == k_smallest_hashes(g.n, g.k, g.seed, g.step));
  }
}

TEST_CASE("random_k: the search for the hash bound ends, and keeps at most 2k + 64 candidates") {
  CHECK(gc::detail::random_k_scratch_cap(1) == 66);
  CHECK(gc::detail::random_k_scratch_cap(1000) == 2064);
  CHECK(gc::detail::random_k_scratch_cap(std::numeric_limits<std::uint64_t>::max() / 2) ==
        std::numeric_limits<std::uint64_t>::max());
  // The first bound is only a guess: hashes bunched far above it (doubling) or far below it
  // (bisection), or spread so that the count jumps past the cap, must still end with a count
  // in [k, cap]. collect is given sorted distinct hashes; it counts those at or below t.
  std::mt19937_64 rng(99);
  const auto search = [](const std::vector<std::uint64_t>& hashes, std::uint64_t k) {
    const std::uint64_t n = hashes.size(), cap = gc::detail::random_k_scratch_cap(k);
    int calls = 0;
    std::uint64_t last_t = 0;
    const std::uint64_t found = gc::detail::random_k_search(n, k, cap, [&](std::uint64_t t, std::uint64_t limit) {
      ++calls;
      last_t = t;
      CHECK(limit == cap);
      return static_cast<std::uint64_t>(std::upper_bound(hashes.begin(), hashes.end(), t) - hashes.begin());
    });
    CHECK(found >= k);
    CHECK(found <= cap);
    CHECK(found == static_cast<std::uint64_t>(std::upper_bound(hashes.begin(), hashes.end(), last_t) - hashes.begin()));
    CHECK(calls <= 130);
  };
  for (int t = 0; t < 200; ++t) {
    const std::uint64_t n = 2 + rng() % 5000;
    const std::uint64_t k = 1 + rng() % (n - 1);
    CAPTURE(n);
    CAPTURE(k);
    std::set<std::uint64_t> set;
    const int shape = t % 4;
    while (set.size() < n) {
      const std::uint64_t r = rng();
      if (shape == 0) set.insert(std::numeric_limits<std::uint64_t>::max() - (r % (4 * n)));  // all at the top
      if (shape == 1) set.insert(r % (4 * n));                                                 // all at the bottom
      if (shape == 2) set.insert((std::uint64_t{1} << 40) + (r % (8 * n)));                  // one narrow band
      if (shape == 3) set.insert(r);                                                           // uniform
    }
    search(std::vector<std::uint64_t>(set.begin(), set.end()), k);
  }
}

// =======================================================================================
// random_k / unbiased_random_k: statistics

TEST_CASE("random_k: every index is selected with frequency k/d (per index and chi-square)") {
  struct config {
    std::size_t d, k;
  };
  constexpr std::uint64_t N = 20000;
  for (const config cfg : {config{2, 1}, config{3, 1}, config{3, 2}, config{5, 2}, config{10, 3}, config{17, 16},
                           config{50, 7}, config{129, 64}, config{1000, 10}}) {
    const std::vector<float> x(cfg.d, 1.0f);
    const double p = static_cast<double>(cfg.k) / static_cast<double>(cfg.d);
    const double mean = static_cast<double>(N) * p;
    const double sd = std::sqrt(static_cast<double>(N) * p * (1.0 - p));
    for (const bool vary_seed : {true, false}) {
      CAPTURE(cfg.d);
      CAPTURE(cfg.k);
      CAPTURE(vary_seed);
      std::vector<std::uint64_t> count(cfg.d, 0);
      gc::random_k stepping{.k = cfg.k, .seed = 4242, .step = 0};
      gc::seeded_sparse_vector<float> out;
      for (std::uint64_t n = 0; n < N; ++n) {
        if (vary_seed) {
          gc::random_k c{.k = cfg.k, .seed = 1'000'003 * n + 11, .step = 0};
          gc::compress(gc::exec::seq, c, x, out);
        } else {
          gc::compress(gc::exec::seq, stepping, x, out);
        }
        for (const auto i : out.indices) ++count[i];
      }
      double chi2 = 0;
      double worst = 0;
      for (std::size_t i = 0; i < cfg.d; ++i) {
        const double z = (static_cast<double>(count[i]) - mean) / sd;
        worst = std::max(worst, std::fabs(z));
        chi2 += z * z;
      }
      CAPTURE(worst);
      CAPTURE(chi2);
      CHECK(worst < 5.0);
      // E[chi2] = d (each count has variance N p (1-p)); sd ~ sqrt(2d).
      if (cfg.d >= 10) CHECK(chi2 < static_cast<double>(cfg.d) + 6.0 * std::sqrt(2.0 * static_cast<double>(cfg.d)));
    }
  }
}

TEST_CASE("random_k: every k-subset of a small dimension is equally likely") {
  // "k entries chosen uniformly at random": the selected set, not only each index, must be
  // uniform over the C(d, k) subsets.
  struct config {
    std::size_t d, k;
  };
  constexpr std::uint64_t N = 20000;
  for (const config cfg : {config{3, 1}, config{4, 2}, config{5, 2}, config{6, 3}, config{7, 2}}) {
    const std::vector<double> x(cfg.d, 1.0);
    std::map<std::vector<std::uint32_t>, std::uint64_t> freq;
    gc::seeded_sparse_vector<double> out;
    for (std::uint64_t n = 0; n < N; ++n) {
      gc::random_k c{.k = cfg.k, .seed = 7 * n + 3, .step = n % 5};
      gc::compress(gc::exec::seq, c, x, out);
      ++freq[out.indices];
    }
    // Number of subsets C(d, k).
    double subsets = 1;
    for (std::size_t j = 0; j < cfg.k; ++j) subsets = subsets * static_cast<double>(cfg.d - j) / static_cast<double>(j + 1);
    const double p = 1.0 / subsets;
    const double mean = static_cast<double>(N) * p;
    const double sd = std::sqrt(static_cast<double>(N) * p * (1.0 - p));
    CAPTURE(cfg.d);
    CAPTURE(cfg.k);
    CHECK(static_cast<double>(freq.size()) == subsets);
    double worst = 0;
    for (const auto& [set, c] : freq) worst = std::max(worst, std::fabs(static_cast<double>(c) - mean) / sd);
    CAPTURE(worst);
    CHECK(worst < 5.0);
  }
}

TEST_CASE_TEMPLATE("random_k: E||x - C(x)||^2 = (1 - k/d) ||x||^2", T, float, double) {
  struct config {
    std::size_t d, k;
  };
  constexpr std::uint64_t N = 10000;
  for (const config cfg : {config{50, 7}, config{10, 9}, config{200, 1}, config{129, 64}}) {
    const std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, cfg.d, cfg.d + cfg.k);
    const long double norm = gt::squared_norm_ld(std::span<const T>(x));
    const long double d = static_cast<long double>(cfg.d), k = static_cast<long double>(cfg.k);
    const long double expected = (1.0L - k / d) * norm;
    // Var of the sum of squares of k entries drawn without replacement.
    const long double var_one = k * variance_of_squares(x) * (d - k) / (d - 1.0L);
    const long double tol = 5.0L * std::sqrt(var_one / static_cast<long double>(N)) + 1e-12L * norm;
    gc::random_k c{.k = cfg.k, .seed = 31337, .step = 0};
    gc::seeded_sparse_vector<T> out;
    long double sum = 0;
    bool never_above_norm = true;  // dropping entries never increases the norm
    for (std::uint64_t n = 0; n < N; ++n) {
      gc::compress(gc::exec::seq, c, x, out);
      const std::vector<T> dense = gt::densify<T>(out, cfg.d);
      const long double err = gt::squared_distance(std::span<const T>(x), std::span<const T>(dense));
      never_above_norm = never_above_norm && err <= norm;
      sum += err;
    }
    CHECK(never_above_norm);
    const long double mean = sum / static_cast<long double>(N);
    CAPTURE(cfg.d);
    CAPTURE(cfg.k);
    CAPTURE(static_cast<double>(mean));
    CAPTURE(static_cast<double>(expected));
    CAPTURE(static_cast<double>(tol));
    CHECK(std::fabs(mean - expected) <= tol);
    CHECK(c.delta(cfg.d) == static_cast<double>(cfg.k) / static_cast<double>(cfg.d));
  }
}

TEST_CASE_TEMPLATE("unbiased_random_k: E decode(C(x)) = x and E||C(x) - x||^2 = omega ||x||^2", T, float, double) {
  struct config {
    std::size_t d, k;
  };
  constexpr std::uint64_t N = 20000;
  for (const config cfg : {config{20, 5}, config{21, 5}, config{7, 6}, config{40, 1}}) {
    const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, cfg.d, 100 + cfg.d);
    const long double d = static_cast<long double>(cfg.d), k = static_cast<long double>(cfg.k);
    const long double s = d / k;
    const long double norm = gt::squared_norm_ld(std::span<const T>(x));
    const long double eps = std::numeric_limits<T>::epsilon();
    std::vector<long double> sum(cfg.d, 0.0L);
    long double err_sum = 0;
    gc::seeded_sparse_vector<T> out;
    for (std::uint64_t n = 0; n < N; ++n) {
      gc::unbiased_random_k c{.k = cfg.k, .seed = 0x1234567ULL * (n + 1), .step = 3};
      gc::compress(gc::exec::seq, c, x, out);
      const std::vector<T> dense = gt::densify<T>(out, cfg.d);
      for (std::size_t i = 0; i < cfg.d; ++i) sum[i] += dense[i];
      err_sum += gt::squared_distance(std::span<const T>(dense), std::span<const T>(x));
    }
    CAPTURE(cfg.d);
    CAPTURE(cfg.k);
    // Per coordinate: C(x)_i = s x_i with probability k/d, else 0; Var = x_i^2 (s - 1).
    bool mean_ok = true;
    for (std::size_t i = 0; i < cfg.d; ++i) {
      const long double xi = x[i];
      const long double m = sum[i] / static_cast<long double>(N);
      const long double sd = std::fabs(xi) * std::sqrt((s - 1.0L) / static_cast<long double>(N));
      const long double tol = 5.0L * sd + 4.0L * eps * s * std::fabs(xi);
      if (!(std::fabs(m - xi) <= tol)) {
        mean_ok = false;
        INFO("coordinate " << i << ": mean " << static_cast<double>(m) << " vs x_i " << static_cast<double>(xi)
                           << " (tol " << static_cast<double>(tol) << ")");
        CHECK(false);
      }
    }
    CHECK(mean_ok);
    // ||C(x) - x||^2 = ||x||^2 + (s^2 - 2s) sum_{i in S} x_i^2; the sampled sum has variance
    // k var(x^2) (d - k) / (d - 1).
    gc::unbiased_random_k c{.k = cfg.k};
    const double omega = c.omega(cfg.d);
    CHECK(omega == static_cast<double>(cfg.d) / static_cast<double>(cfg.k) - 1.0);
    const long double var_sum = k * variance_of_squares(x) * (d - k) / (d - 1.0L);
    const long double sd = std::fabs(s * s - 2.0L * s) * std::sqrt(var_sum / static_cast<long double>(N));
    const long double mean_err = err_sum / static_cast<long double>(N);
    const long double expected = static_cast<long double>(omega) * norm;
    const long double tol = 5.0L * sd + 8.0L * eps * s * s * norm;
    CAPTURE(static_cast<double>(mean_err / norm));
    CAPTURE(omega);
    CAPTURE(static_cast<double>(tol / norm));
    CHECK(std::fabs(mean_err - expected) <= tol);
  }
}

// =======================================================================================
// delta / omega / absolute_bound

TEST_CASE("sparsifiers: delta, omega and absolute_bound for d = 0, 1 and k > d") {
  const gc::top_k t3{.k = 3};
  CHECK(t3.delta(0) == 1.0);
  CHECK(t3.delta(1) == 1.0);
  CHECK(t3.delta(2) == 1.0);
  CHECK(t3.delta(3) == 1.0);
  CHECK(t3.delta(4) == 0.75);
  CHECK(t3.delta(10) == 3.0 / 10.0);
  CHECK(gc::top_k{.k = 1}.delta(1) == 1.0);
  CHECK(gc::top_k{.k = 1}.delta(1000) == 0.001);
  CHECK(gc::top_k{.k = std::numeric_limits<std::size_t>::max()}.delta(5) == 1.0);

  const gc::random_k r3{.k = 3};
  CHECK(r3.delta(0) == 1.0);
  CHECK(r3.delta(1) == 1.0);
  CHECK(r3.delta(2) == 1.0);
  CHECK(r3.delta(4) == 0.75);
  CHECK(r3.delta(10) == 3.0 / 10.0);

  const gc::unbiased_random_k u3{.k = 3};
  CHECK(u3.omega(0) == 0.0);
  CHECK(u3.omega(1) == 0.0);
  CHECK(u3.omega(2) == 0.0);
  CHECK(u3.omega(3) == 0.0);
  CHECK(u3.omega(6) == 1.0);
  CHECK(u3.omega(10) == 10.0 / 3.0 - 1.0);
  CHECK(gc::unbiased_random_k{.k = 1}.omega(1) == 0.0);
  CHECK(gc::unbiased_random_k{.k = 1}.omega(100) == 99.0);

  // absolute_bound(d) is d lambda^2, rounded up by at most a few ulps (docs/categories.md:
  // the bounds are exact statements about real numbers).
  const auto bound_is = [](double bound, double exact) {
    return bound >= exact && bound <= exact * (1.0 + 1e-14);
  };
  const gc::hard_threshold h{.lambda = 0.5};
  CHECK(h.absolute_bound(0) == 0.0);
  CHECK(bound_is(h.absolute_bound(1), 0.25));
  CHECK(bound_is(h.absolute_bound(10), 2.5));
  CHECK(gc::hard_threshold{.lambda = 0.0}.absolute_bound(1000) == 0.0);
  CHECK(gc::hard_threshold{.lambda = 0.0}.absolute_bound(0) == 0.0);
  CHECK(bound_is(gc::hard_threshold{.lambda = 3.0}.absolute_bound(7), 63.0));
  CHECK(bound_is(gc::hard_threshold{.lambda = 0.1}.absolute_bound(3), 0.03));
  CHECK(bound_is(gc::hard_threshold::matching_top_k(100).absolute_bound(100), 0.25));
  CHECK(std::isinf(gc::hard_threshold{.lambda = std::numeric_limits<double>::infinity()}.absolute_bound(1)));
  // d = 0: the only vector is empty and its error is 0, whatever lambda is; the bound must
  // be a number that 0 <= bound holds for (not 0 * inf = NaN).
  CHECK(gc::hard_threshold{.lambda = std::numeric_limits<double>::infinity()}.absolute_bound(0) == 0.0);
  CHECK(gc::hard_threshold{.lambda = 1e30}.absolute_bound(0) == 0.0);
}

// =======================================================================================
// Index types

TEST_CASE_TEMPLATE("sparsifiers: sparse_vector<T, uint64_t> as output of top_k and hard_threshold", T, float, double) {
  for (const std::size_t d : {0u, 1u, 9u, 1000u, 4097u}) {
    CAPTURE(d);
    auto x = gt::make_input<T>(gt::input_kind::ties, d, 8);
    inject_specials(x, d);
    for (const std::size_t k : k_values(d)) {
      gc::sparse_vector<T, std::uint64_t> wide;
      gc::sparse_vector<T> narrow;
      gc::compress(gc::exec::seq, gc::top_k{.k = k}, x, wide);
      gc::compress(gc::exec::seq, gc::top_k{.k = k}, x, narrow);
      CHECK(wide.dim == d);
      CHECK(as_size_t(wide.indices) == brute_top_k(x, k));
      CHECK(as_size_t(wide.indices) == as_size_t(narrow.indices));
      CHECK(values_are_exact(x, wide.indices, wide.values));
    }
    for (const double lambda : {0.0, 0.3, 0.5, 1.0}) {
      gc::sparse_vector<T, std::uint64_t> wide;
      gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = lambda}, x, wide);
      CHECK(as_size_t(wide.indices) == brute_threshold(x, lambda));
      CHECK(values_are_exact(x, wide.indices, wide.values));
      // A 64-bit index payload survives the wire.
      const auto back = gc::decode<gc::sparse_vector<T, std::uint64_t>>(gc::encode(wide));
      CHECK(back.indices == wide.indices);
      CHECK(gt::same_bits(back.values, wide.values));
    }
  }
}

TEST_CASE("sparsifiers: an index type too small for d is rejected, the largest that fits works") {
  const auto x300 = gt::make_input<float>(gt::input_kind::normal, 300, 1);
  const auto x257 = gt::make_input<float>(gt::input_kind::normal, 257, 1);
  const auto x256 = gt::make_input<float>(gt::input_kind::normal, 256, 1);

  gc::sparse_vector<float, std::uint8_t> small;
  small.dim = 5;
  small.indices = {1, 4};
  small.values = {3.0f, -1.0f};
  const auto before = small;

  for (const auto* x : {&x300, &x257}) {
    const std::string d_text = std::to_string(x->size());
    CAPTURE(d_text);
    std::string msg = error_message([&] { gc::compress(gc::exec::seq, gc::top_k{.k = 10}, *x, small); });
    CAPTURE(msg);
    CHECK(contains(msg, "index type"));
    CHECK(contains(msg, d_text));
    CHECK(small == before);
    msg = error_message([&] { gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = 0.5}, *x, small); });
    CHECK(contains(msg, "index type"));
    CHECK(contains(msg, d_text));
    CHECK(small == before);
    CHECK_THROWS_AS(gc::compress(gc::exec::seq, gc::top_k{.k = 1}, *x, small), std::invalid_argument);

    gc::seeded_sparse_vector<float, std::uint8_t> seeded;
    seeded.dim = 2;
    seeded.indices = {1};
    seeded.values = {7.0f};
    const auto seeded_before = seeded;
    gc::random_k r{.k = 3, .seed = 1, .step = 9};
    msg = error_message([&] { gc::compress(gc::exec::seq, r, *x, seeded); });
    CHECK(contains(msg, "index type"));
    CHECK(contains(msg, d_text));
    CHECK(seeded == seeded_before);
    CHECK(r.step == 9);  // a failed call does not advance the stream
  }

  // d = 256: the largest index 255 fits in uint8_t.
  gc::compress(gc::exec::seq, gc::top_k{.k = 256}, x256, small);
  CHECK(small.dim == 256);
  REQUIRE(small.indices.size() == 256);
  CHECK(small.indices.back() == 255);
  CHECK(values_are_exact(x256, small.indices, small.values));
  gc::compress(gc::exec::seq, gc::top_k{.k = 5}, x256, small);
  CHECK(as_size_t(small.indices) == brute_top_k(x256, 5));
  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = 1.0}, x256, small);
  CHECK(as_size_t(small.indices) == brute_threshold(x256, 1.0));
  CHECK(values_are_exact(x256, small.indices, small.values));
  gc::seeded_sparse_vector<float, std::uint8_t> seeded;
  gc::random_k r{.k = 256, .seed = 1};
  gc::compress(gc::exec::seq, r, x256, seeded);
  REQUIRE(seeded.indices.size() == 256);
  CHECK(seeded.indices.back() == 255);

  // uint16_t: 65536 fits, 65537 does not.
  const std::vector<float> x65536(65536, 1.0f), x65537(65537, 1.0f);
  gc::sparse_vector<float, std::uint16_t> mid;
  gc::compress(gc::exec::seq, gc::top_k{.k = 2}, x65536, mid);
  CHECK(mid.indices == std::vector<std::uint16_t>{0, 1});
  const std::string msg = error_message([&] { gc::compress(gc::exec::seq, gc::top_k{.k = 2}, x65537, mid); });
  CHECK(contains(msg, "index type"));
  CHECK(contains(msg, "65537"));
  CHECK(mid.indices == std::vector<std::uint16_t>{0, 1});
}

// =======================================================================================
// Errors

TEST_CASE_TEMPLATE("sparsifiers: bad parameters throw gc::error naming them and leave the output unchanged", T,
                   float, double) {
  for (const std::size_t d : {0u, 1u, 10u}) {
    CAPTURE(d);
    const auto x = gt::make_input<T>(gt::input_kind::normal, d, 2);

    gc::sparse_vector<T> out;
    out.dim = 6;
    out.indices = {0, 2, 5};
    out.values = {T(1.5), T(-2), T(3)};
    const auto before = out;

    {  // top_k k = 0
      CHECK_THROWS_AS(gc::compress(gc::exec::seq, gc::top_k{.k = 0}, x, out), gc::error);
      CHECK_THROWS_AS(gc::compress(gc::exec::seq, gc::top_k{.k = 0}, x, out), std::invalid_argument);
      const std::string msg = error_message([&] { gc::compress(gc::exec::seq, gc::top_k{.k = 0}, x, out); });
      CAPTURE(msg);
      CHECK(contains(msg, "gradcomp::"));
      CHECK(contains(msg, "top_k"));
      CHECK(contains(msg, "k"));
      CHECK(contains(msg, "0"));
      CHECK(out == before);
    }
    for (const double bad : {-0.25, -1e-300, -std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::quiet_NaN()}) {
      CAPTURE(bad);
      const gc::hard_threshold h{.lambda = bad};
      CHECK_THROWS_AS(gc::compress(gc::exec::seq, h, x, out), gc::error);
      const std::string msg = error_message([&] { gc::compress(gc::exec::seq, h, x, out); });
      CAPTURE(msg);
      CHECK(contains(msg, "gradcomp::"));
      CHECK(contains(msg, "lambda"));
      if (std::isnan(bad))
        CHECK(contains(lower(msg), "nan"));
      else if (std::isinf(bad))
        CHECK(contains(lower(msg), "-inf"));
      else if (bad == -0.25)
        CHECK(contains(msg, "-0.25"));
      else
        CHECK(contains(msg, "-1e-300"));
      CHECK(out == before);
    }

    gc::seeded_sparse_vector<T> seeded;
    seeded.dim = 4;
    seeded.seed = 3;
    seeded.step = 8;
    seeded.indices = {1, 2};
    seeded.values = {T(4), T(5)};
    const auto seeded_before = seeded;
    {  // random_k k = 0
      gc::random_k r{.k = 0, .seed = 5, .step = 11};
      const std::string msg = error_message([&] { gc::compress(gc::exec::seq, r, x, seeded); });
      CAPTURE(msg);
      CHECK(contains(msg, "gradcomp::"));
      CHECK(contains(msg, "random_k"));
      CHECK(contains(msg, "k"));
      CHECK(contains(msg, "0"));
      CHECK(seeded == seeded_before);
      CHECK(r.step == 11);
      CHECK_THROWS_AS(gc::compress(gc::exec::seq, r, x, seeded), gc::error);
    }
    {  // unbiased_random_k k = 0
      gc::unbiased_random_k u{.k = 0, .seed = 5, .step = 11};
      const std::string msg = error_message([&] { gc::compress(gc::exec::seq, u, x, seeded); });
      CAPTURE(msg);
      CHECK(contains(msg, "unbiased_random_k"));
      CHECK(contains(msg, "k"));
      CHECK(contains(msg, "0"));
      CHECK(seeded == seeded_before);
      CHECK(u.step == 11);
    }
  }

  // lambda = -0.0 is not < 0: accepted, keeps everything.
  const std::vector<T> x = {T(0), T(-1), T(2)};
  gc::sparse_vector<T> out;
  CHECK_NOTHROW(gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = -0.0}, x, out));
  CHECK(out.indices == std::vector<std::uint32_t>{0, 1, 2});
}
