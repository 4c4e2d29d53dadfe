// Unit tests for the sign compressors (scaled_sign, blockwise_sign), the quantizers (qsgd,
// grid_rounding), identity, the fixed-order reductions they rely on, and the compile-time
// categories of every compressor.
//
// Deterministic results are checked against brute-force definitions written here (long
// double sums, plain loops, an independent re-implementation of the documented reduction
// order). Random quantizers are checked per draw against their definition and
// statistically over fixed seed lists (so every run draws the same numbers), with
// tolerances of 5 sigma of the known Bernoulli distribution.
#include <doctest/doctest.h>

#include <gradcomp/gradcomp.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <type_traits>
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

/// Distance in ulps between two non-negative finite values of T (adjacent values: 1).
template <class T>
std::uint64_t ulp_distance(T a, T b) {
  const std::uint64_t ua = bits(a), ub = bits(b);
  return ua > ub ? ua - ub : ub - ua;
}

/// The gap from |v| to the next representable value of T above it.
template <class T>
long double ulp_of(T v) {
  const T a = std::fabs(v);
  return static_cast<long double>(std::nextafter(a, std::numeric_limits<T>::infinity())) -
         static_cast<long double>(a);
}

/// True when msg contains `word` delimited by non-identifier characters (so "s" is found in
/// "qsgd: s (number of levels)" but not inside "qsgd").
bool names_word(const std::string& msg, const std::string& word) {
  const auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (std::size_t pos = msg.find(word); pos != std::string::npos; pos = msg.find(word, pos + 1)) {
    const bool left_ok = pos == 0 || !ident(msg[pos - 1]);
    const bool right_ok = pos + word.size() >= msg.size() || !ident(msg[pos + word.size()]);
    if (left_ok && right_ok) return true;
  }
  return false;
}



/// The fewest bits (at least 1) that hold the zigzag codes of every level, by brute force.
unsigned brute_level_bits(const std::vector<std::int32_t>& levels) {
  std::uint64_t widest = 0;
  for (const std::int32_t l : levels) {
    // zigzag: 0, -1, 1, -2, 2, ... -> 0, 1, 2, 3, 4, ...
    const std::int64_t v = l;
    const std::uint64_t code = v >= 0 ? static_cast<std::uint64_t>(2 * v) : static_cast<std::uint64_t>(-2 * v - 1);
    widest = std::max(widest, code);
  }
  unsigned w = 1;
  while ((widest >> w) != 0) ++w;
  return w;
}

// ---------------------------------------------------------------------------------------
// An independent implementation of the documented reduction order (detail/reduce.hpp),
// bottom-up where the library recurses top-down: blocks of 4096 elements; inside a block
// element i is row i / 8 of lane i % 8, each lane's 512 rows (zeros past the end) are added
// in adjacent pairs level by level; the lanes fold as ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7));
// the block sums (zeros up to a power of two) are added in adjacent pairs level by level.
// FP contraction is switched off so that the square and the sum round separately, as in
// the reference. The options build orders the library must NOT match: another fold, lanes
// summed left to right (the order before the pairwise tree), another block size.

/// Adjacent pairs, level by level, until one value is left (v.size() a power of two). Works
/// in v. (By reference: GCC 12 at -O3 warns falsely, -Wfree-nonheap-object, on a by-value copy.)
GRADCOMP_NO_FP_CONTRACT inline double pairwise_levels(std::vector<double>& v) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t n = v.size(); n > 1; n /= 2)
    for (std::size_t i = 0; i < n / 2; ++i) v[i] = v[2 * i] + v[2 * i + 1];
  return v.empty() ? 0.0 : v[0];
}

template <class T, class F>
GRADCOMP_NO_FP_CONTRACT double ref_ordered_sum(std::span<const T> x, F term, std::size_t block = 4096,
                                               bool alt_fold = false, bool sequential_lanes = false) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::vector<double> block_sums;
  for (std::size_t begin = 0; begin < x.size(); begin += block) {
    const std::size_t end = std::min(x.size(), begin + block);
    double a[8];
    for (std::size_t l = 0; l < 8; ++l) {
      std::vector<double> rows(block / 8, 0.0);
      for (std::size_t i = begin + l; i < end; i += 8) rows[(i - begin) / 8] = term(x[i]);
      if (sequential_lanes) {
        a[l] = 0.0;
        for (const double r : rows) a[l] = a[l] + r;
      } else {
        a[l] = pairwise_levels(rows);
      }
    }
    block_sums.push_back(alt_fold ? ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
                                  : ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])));
  }
  std::size_t padded = 1;
  while (padded < block_sums.size()) padded *= 2;
  block_sums.resize(padded, 0.0);
  return pairwise_levels(block_sums);
}

template <class T>
double ref_abs_term(T v) {
  return std::fabs(static_cast<double>(v));
}
template <class T>
GRADCOMP_NO_FP_CONTRACT double ref_sq_term(T v) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const double w = static_cast<double>(v);
  return w * w;
}

template <class T>
double ref_l1(std::span<const T> x) {
  return ref_ordered_sum(x, [](T v) { return ref_abs_term(v); });
}
template <class T>
double ref_sq(std::span<const T> x) {
  return ref_ordered_sum(x, [](T v) { return ref_sq_term(v); });
}

// The documented rescue for double sums out of range (detail/reduce.hpp): sum again on
// x * 2^-e, 2^e the power of two just above the largest finite |x_i|, and scale back.
template <class T>
int ref_max_exponent(std::span<const T> x) {
  double largest = 0;
  for (const T v : x)
    if (std::isfinite(static_cast<double>(v))) largest = std::max(largest, std::fabs(static_cast<double>(v)));
  int e = 0;
  std::frexp(largest, &e);
  return e;
}
template <class T>
double ref_l2_norm(std::span<const T> x) {
  const double sq = ref_sq(x);
  if (std::isnan(sq) || (sq >= 0x1p-900 && !std::isinf(sq))) return std::sqrt(sq);
  const int e = ref_max_exponent(x);
  const double scaled = ref_ordered_sum(x, [e](T v) {
    const double w = std::ldexp(static_cast<double>(v), -e);
    return w * w;
  });
  return std::ldexp(std::sqrt(scaled), e);
}
template <class T>
double ref_mean_abs(std::span<const T> x) {
  const double l1 = ref_l1(x);
  if (!std::isinf(l1)) return l1 / static_cast<double>(x.size());
  const int e = ref_max_exponent(x);
  const double scaled = ref_ordered_sum(x, [e](T v) { return std::ldexp(std::fabs(static_cast<double>(v)), -e); });
  return std::ldexp(scaled / static_cast<double>(x.size()), e);
}

/// Plain left-to-right double sum (what the fixed order is NOT).
template <class T, class F>
GRADCOMP_NO_FP_CONTRACT double naive_sum(std::span<const T> x, F term) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  double s = 0.0;
  for (const T v : x) s = s + term(v);
  return s;
}

/// Values spread over many binades with random signs: sums of them depend on the order.
template <class T>
std::vector<T> wide_range_input(std::size_t d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> expo(-25, 25);
  std::uniform_real_distribution<double> mant(1.0, 2.0);
  std::vector<T> x(d);
  for (auto& v : x) v = static_cast<T>((rng() & 1 ? -1.0 : 1.0) * std::ldexp(mant(rng), expo(rng)));
  return x;
}

// ---------------------------------------------------------------------------------------
// Brute-force sign compression.

template <class T>
struct sign_reference {
  std::vector<long double> exact_scale;  // (sum |x_i| in long double) / n
  std::vector<T> scale;                  // exact_scale rounded to T
  std::vector<std::size_t> block_len;
  std::vector<std::uint64_t> words;  // bit i set iff x_i < 0; bits past d zero
};

template <class T>
sign_reference<T> brute_sign(const std::vector<T>& x, std::size_t b) {
  sign_reference<T> r;
  const std::size_t d = x.size();
  for (std::size_t begin = 0; begin < d; begin += std::min(b, d - begin)) {
    const std::size_t n = std::min(b, d - begin);
    long double sum = 0;
    for (std::size_t i = begin; i < begin + n; ++i) sum += std::fabs(static_cast<long double>(x[i]));
    r.exact_scale.push_back(sum / static_cast<long double>(n));
    r.scale.push_back(static_cast<T>(sum / static_cast<long double>(n)));
    r.block_len.push_back(n);
  }
  r.words.assign((d + 63) / 64, 0);
  for (std::size_t i = 0; i < d; ++i)
    if (x[i] < T(0)) r.words[i / 64] |= std::uint64_t{1} << (i % 64);
  return r;
}

/// Checks one sign payload against the brute-force definition with blocks of b.
template <class T>
void check_sign_payload(const std::vector<T>& x, std::size_t b, const gc::sign_vector<T>& p) {
  const std::size_t d = x.size();
  const auto ref = brute_sign(x, b);

  REQUIRE(p.dim == d);
  CHECK(p.block_size == b);
  const std::size_t expect_blocks = d == 0 ? 0 : (d + b - 1) / b;
  CHECK(p.blocks() == expect_blocks);
  REQUIRE(p.scales.size() == expect_blocks);
  REQUIRE(ref.scale.size() == expect_blocks);
  CHECK(p.negative.size() == (d + 63) / 64);
  CHECK(p.negative == ref.words);
  CHECK(p.sent_elements() == d);

  for (std::size_t blk = 0; blk < expect_blocks; ++blk) {
    CAPTURE(blk);
    const T got = p.scales[blk];
    const T want = ref.scale[blk];
    const std::size_t n = ref.block_len[blk];
    REQUIRE(std::isfinite(got));
    CHECK(got >= T(0));
    if constexpr (std::is_same_v<T, float>) {
      // The library's double sum is within ~1e-13 of the exact one: after rounding to
      // float the two can only be equal or neighbours.
      CHECK(ulp_distance(got, want) <= 1);
    } else {
      // Rigorous bound on the error of the library's double sum (m roundings of a sum of
      // non-negative terms), the long double reference sum, the division and the final
      // rounding.
      const double m = std::ceil(static_cast<double>(std::min<std::size_t>(n, 4096)) / 8.0) + 4.0 +
                       std::ceil(static_cast<double>(n) / 4096.0);
      const long double tol = ref.exact_scale[blk] * (m * 0x1p-53L + static_cast<long double>(n) * 0x1p-63L) +
                              2 * ulp_of(want);
      CHECK(std::fabs(static_cast<long double>(got) - static_cast<long double>(want)) <= tol);
    }
    // And exactly the documented computation: fixed-order double sum / n (rescaled if the
    // sum overflows), rounded once.
    const std::span<const T> block(x.data() + blk * b, n);
    const T exact_order = static_cast<T>(ref_mean_abs(block));
    CHECK(bits(got) == bits(exact_order));
  }

  // Decoding gives +-scale of the element's block.
  const auto dec = gt::densify<T>(p, d);
  bool decode_ok = true;
  for (std::size_t i = 0; i < d; ++i) {
    const T s = p.scales[i / b];
    const T want = T(0) + (x[i] < T(0) ? -s : s);
    if (bits(dec[i]) != bits(want)) decode_ok = false;
  }
  CHECK(decode_ok);

  // Contraction: ||x - C(x)||^2 <= (1 - 1/min(b, d)) ||x||^2. The scale is rounded to T,
  // which adds n_b (s_b - s*_b)^2 <= n_b ulp(s_b)^2 per block (only visible for subnormal
  // scales); the rest is long double rounding.
  if (d > 0) {
    const long double err = gt::squared_distance<T>(x, dec);
    const long double norm2 = gt::squared_norm_ld<T>(x);
    const long double delta = 1.0L / static_cast<long double>(std::min(b, d));
    long double rounding = 0;
    for (std::size_t blk = 0; blk < expect_blocks; ++blk) {
      const long double u = ulp_of(ref.scale[blk]);
      rounding += static_cast<long double>(ref.block_len[blk]) * u * u;
    }
    const long double rel = std::is_same_v<T, float> ? 1e-6L : 1e-12L;
    CAPTURE(static_cast<double>(err));
    CAPTURE(static_cast<double>(norm2));
    CHECK(err <= (1 - delta) * norm2 + rel * norm2 + rounding);
  }
}

// ---------------------------------------------------------------------------------------
// Statistics of a random quantizer over many draws.

/// Mean of decode(C(x)) per coordinate, mean of ||decode(C(x)) - x||^2, over `draws` calls
/// of make(draw) -> compressor.
template <class T, class MakeCompressor>
void draw_statistics(const std::vector<T>& x, int draws, MakeCompressor make, std::vector<long double>& mean,
                     long double& mean_sq_err) {
  const std::size_t d = x.size();
  mean.assign(d, 0);
  mean_sq_err = 0;
  gc::quantized_vector<T> out;
  std::vector<T> dec(d);
  for (int k = 0; k < draws; ++k) {
    auto&& c = make(k);  // a fresh compressor, or a reference to one that keeps stepping
    gc::compress(gc::exec::seq, c, x, out);
    std::fill(dec.begin(), dec.end(), T(0));
    gc::decompress_add(out, std::span<T>(dec));
    for (std::size_t i = 0; i < d; ++i) mean[i] += dec[i];
    mean_sq_err += gt::squared_distance<T>(x, dec);
  }
  for (auto& m : mean) m /= draws;
  mean_sq_err /= draws;
}

}  // namespace

// =======================================================================================
// Compile-time facts.

// Payload types.
static_assert(std::is_same_v<gc::payload_t<gc::identity, float>, gc::dense_vector<float>>);
static_assert(std::is_same_v<gc::payload_t<gc::scaled_sign, double>, gc::sign_vector<double>>);
static_assert(std::is_same_v<gc::payload_t<gc::blockwise_sign, float>, gc::sign_vector<float>>);
static_assert(std::is_same_v<gc::payload_t<gc::qsgd, double>, gc::quantized_vector<double>>);
static_assert(std::is_same_v<gc::payload_t<gc::grid_rounding, float>, gc::quantized_vector<float>>);

// The documented reduction order's constants.
static_assert(gc::detail::reduction_block == 4096);
static_assert(gc::detail::reduction_lanes == 8);

// Categories, for both value types. identity has all three.
namespace {
template <class T>
constexpr bool categories_hold() {
  // identity: every category.
  static_assert(gc::compressor<gc::identity, T>);
  static_assert(gc::absolute_compressor<gc::identity, T>);
  static_assert(gc::contractive_compressor<gc::identity, T>);
  static_assert(gc::unbiased_compressor<gc::identity, T>);
  static_assert(!gc::seeded_compressor<gc::identity>);

  // Sign compressors: delta-contractions only.
  static_assert(gc::contractive_compressor<gc::scaled_sign, T>);
  static_assert(!gc::absolute_compressor<gc::scaled_sign, T>);
  static_assert(!gc::unbiased_compressor<gc::scaled_sign, T>);
  static_assert(!gc::seeded_compressor<gc::scaled_sign>);
  static_assert(gc::contractive_compressor<gc::blockwise_sign, T>);
  static_assert(!gc::absolute_compressor<gc::blockwise_sign, T>);
  static_assert(!gc::unbiased_compressor<gc::blockwise_sign, T>);
  static_assert(!gc::seeded_compressor<gc::blockwise_sign>);

  // QSGD: unbiased only, seeded.
  static_assert(gc::unbiased_compressor<gc::qsgd, T>);
  static_assert(!gc::absolute_compressor<gc::qsgd, T>);
  static_assert(!gc::contractive_compressor<gc::qsgd, T>);
  static_assert(gc::seeded_compressor<gc::qsgd>);

  // Grid rounding: absolute only, seeded (its stochastic mode draws from the stream).
  static_assert(gc::absolute_compressor<gc::grid_rounding, T>);
  static_assert(!gc::contractive_compressor<gc::grid_rounding, T>);
  static_assert(!gc::unbiased_compressor<gc::grid_rounding, T>);
  static_assert(gc::seeded_compressor<gc::grid_rounding>);

  // Sparsifiers.
  static_assert(gc::contractive_compressor<gc::top_k, T>);
  static_assert(!gc::unbiased_compressor<gc::top_k, T>);
  static_assert(!gc::absolute_compressor<gc::top_k, T>);
  static_assert(!gc::seeded_compressor<gc::top_k>);
  static_assert(gc::absolute_compressor<gc::hard_threshold, T>);
  static_assert(!gc::contractive_compressor<gc::hard_threshold, T>);
  static_assert(!gc::unbiased_compressor<gc::hard_threshold, T>);
  static_assert(!gc::seeded_compressor<gc::hard_threshold>);
  static_assert(gc::contractive_compressor<gc::random_k, T>);
  static_assert(!gc::unbiased_compressor<gc::random_k, T>);
  static_assert(!gc::absolute_compressor<gc::random_k, T>);
  static_assert(gc::seeded_compressor<gc::random_k>);
  static_assert(gc::unbiased_compressor<gc::unbiased_random_k, T>);
  static_assert(!gc::contractive_compressor<gc::unbiased_random_k, T>);
  static_assert(!gc::absolute_compressor<gc::unbiased_random_k, T>);
  static_assert(gc::seeded_compressor<gc::unbiased_random_k>);

  // Not compressors of non-floating value types.
  static_assert(!gc::compressor<gc::scaled_sign, int>);
  static_assert(!gc::compressor<gc::qsgd, int>);
  return true;
}
}  // namespace
static_assert(categories_hold<float>());
static_assert(categories_hold<double>());

// =======================================================================================
// Fixed-order reduction.

TEST_CASE_TEMPLATE("reduce: l1_norm and squared_norm follow the documented order bit for bit", T, float, double) {
  const std::size_t sizes[] = {0,    1,    2,    3,    7,    8,    9,    15,   16,    17,    63,   64,
                               65,   100,  1000, 4095, 4096, 4097, 8191, 8192, 8193, 12289, 20000};
  const std::uint64_t seeds[] = {1, 2, 3};
  int naive_differs = 0, fold_differs = 0, block_differs = 0, sequential_differs = 0, large_cases = 0;
  for (const std::size_t d : sizes) {
    for (const std::uint64_t seed : seeds) {
      for (int source = 0; source < 3; ++source) {
        CAPTURE(d);
        CAPTURE(seed);
        CAPTURE(source);
        const std::vector<T> x = source == 0   ? wide_range_input<T>(d, seed)
                                 : source == 1 ? gt::make_input<T>(gt::input_kind::heavy_tailed, d, seed)
                                               : gt::make_input<T>(gt::input_kind::normal, d, seed);
        const std::span<const T> xs(x);
        const double l1 = gc::detail::l1_norm(xs);
        const double sq = gc::detail::squared_norm(xs);
        CHECK(bits(l1) == bits(ref_l1(xs)));
        CHECK(bits(sq) == bits(ref_sq(xs)));

        // The test can tell orders apart: other orders give other bits on some inputs.
        const auto abs_term = [](T v) { return ref_abs_term(v); };
        const auto sq_term = [](T v) { return ref_sq_term(v); };
        if (bits(naive_sum(xs, abs_term)) != bits(l1) || bits(naive_sum(xs, sq_term)) != bits(sq)) ++naive_differs;
        if (bits(ref_ordered_sum(xs, abs_term, 4096, true)) != bits(l1)) ++fold_differs;
        if (bits(ref_ordered_sum(xs, abs_term, 4096, false, true)) != bits(l1) ||
            bits(ref_ordered_sum(xs, sq_term, 4096, false, true)) != bits(sq))
          ++sequential_differs;
        if (d > 4096) {
          ++large_cases;
          if (bits(ref_ordered_sum(xs, abs_term, 8192)) != bits(l1) ||
              bits(ref_ordered_sum(xs, sq_term, 8192)) != bits(sq))
            ++block_differs;
        }
      }
    }
  }
  CHECK(naive_differs > 0);
  CHECK(fold_differs > 0);
  CHECK(sequential_differs > 0);
  CHECK(block_differs > 0);
  CHECK(large_cases > 0);
}

TEST_CASE_TEMPLATE("reduce: sums of special values", T, float, double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T dm = std::numeric_limits<T>::denorm_min();
  {
    const std::vector<T> x{T(1), -inf, T(2)};
    CHECK(gc::detail::l1_norm(std::span<const T>(x)) == std::numeric_limits<double>::infinity());
    CHECK(gc::detail::squared_norm(std::span<const T>(x)) == std::numeric_limits<double>::infinity());
  }
  {
    const std::vector<T> x{T(1), nan, T(2)};
    CHECK(std::isnan(gc::detail::l1_norm(std::span<const T>(x))));
    CHECK(std::isnan(gc::detail::squared_norm(std::span<const T>(x))));
  }
  {
    const std::vector<T> x{-T(0), T(0), -T(0)};
    CHECK(bits(gc::detail::l1_norm(std::span<const T>(x))) == bits(0.0));
    CHECK(bits(gc::detail::squared_norm(std::span<const T>(x))) == bits(0.0));
  }
  {
    const std::vector<T> x{dm, -dm, T(3) * dm};
    CHECK(gc::detail::l1_norm(std::span<const T>(x)) == 5.0 * static_cast<double>(dm));
  }
}

// =======================================================================================
// scaled_sign and blockwise_sign.

TEST_CASE_TEMPLATE("sign: scaled_sign matches the brute-force definition and contracts", T, float, double) {
  gc::sign_vector<T> reused;  // one payload reused across every case: no stale state may leak
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      for (const std::uint64_t seed : {11u, 12u}) {
        const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
        CAPTURE(d);
        CAPTURE(seed);
        const auto x = gt::make_input<T>(kind, d, seed);
        gc::scaled_sign c;
        gc::sign_vector<T> fresh;
        gc::compress(gc::exec::seq, c, x, fresh);
        gc::compress(gc::exec::seq, c, std::span<const T>(x), reused);
        CHECK(fresh == reused);
        // One block of d (block size 1 for the empty vector).
        check_sign_payload(x, d == 0 ? 1 : d, fresh);
        CHECK(c.delta(d) == (d == 0 ? 1.0 : 1.0 / static_cast<double>(d)));

        // ||x - C(x)||^2 = ||x||^2 - ||x||_1^2 / d, up to the rounding of the scale.
        if (d > 0) {
          const auto dec = gt::densify<T>(fresh, d);
          const long double err = gt::squared_distance<T>(x, dec);
          const long double norm2 = gt::squared_norm_ld<T>(x);
          long double l1 = 0;
          for (const T v : x) l1 += std::fabs(static_cast<long double>(v));
          const long double identity = norm2 - l1 * l1 / static_cast<long double>(d);
          const long double u = ulp_of(fresh.scales[0]);
          CHECK(std::fabs(err - identity) <= 1e-5L * norm2 + static_cast<long double>(d) * u * u);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("sign: blockwise_sign matches the brute-force definition and contracts", T, float, double) {
  gc::sign_vector<T> reused;
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      const std::size_t block_sizes[] = {1, 2, 3, 63, 64, 65, 256, std::max<std::size_t>(d, 1), d + 1};
      for (const std::size_t b : block_sizes) {
        const std::uint64_t seed = 21 + b;
        const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
        CAPTURE(d);
        CAPTURE(b);
        CAPTURE(seed);
        const auto x = gt::make_input<T>(kind, d, seed);
        gc::blockwise_sign c{.block_size = b};
        gc::sign_vector<T> fresh;
        gc::compress(gc::exec::seq, c, x, fresh);
        gc::compress(gc::exec::seq, c, x, reused);
        CHECK(fresh == reused);
        check_sign_payload(x, b, fresh);
        const std::size_t widest = std::min(b, d);
        CHECK(c.delta(d) == (widest == 0 ? 1.0 : 1.0 / static_cast<double>(widest)));
      }
    }
  }
}

TEST_CASE_TEMPLATE("sign: blockwise_sign with one block equals scaled_sign", T, float, double) {
  for (const std::size_t d : {1u, 5u, 64u, 100u, 4097u}) {
    CAPTURE(d);
    const auto x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 31);
    gc::sign_vector<T> a, b;
    gc::scaled_sign ss;
    gc::blockwise_sign bs{.block_size = d};
    gc::compress(gc::exec::seq, ss, x, a);
    gc::compress(gc::exec::seq, bs, x, b);
    CHECK(a == b);
  }
}

TEST_CASE_TEMPLATE("sign: hand-computed payloads", T, float, double) {
  // x = (1, -2, 3, -4, 5): blocks of 2 -> scales 1.5, 3.5, 5; negatives at 1 and 3.
  const std::vector<T> x{T(1), T(-2), T(3), T(-4), T(5)};
  gc::sign_vector<T> p;
  gc::blockwise_sign c{.block_size = 2};
  gc::compress(gc::exec::seq, c, x, p);
  CHECK(p.dim == 5);
  CHECK(p.blocks() == 3);
  REQUIRE(p.scales.size() == 3);
  CHECK(p.scales[0] == T(1.5));
  CHECK(p.scales[1] == T(3.5));
  CHECK(p.scales[2] == T(5));
  REQUIRE(p.negative.size() == 1);
  CHECK(p.negative[0] == 0b01010u);
  CHECK(gt::densify<T>(p, 5) == std::vector<T>{T(1.5), T(-1.5), T(3.5), T(-3.5), T(5)});

  gc::scaled_sign s;
  gc::compress(gc::exec::seq, s, x, p);
  CHECK(p.block_size == 5);
  REQUIRE(p.scales.size() == 1);
  CHECK(p.scales[0] == T(3));
  CHECK(gt::densify<T>(p, 5) == std::vector<T>{T(3), T(-3), T(3), T(-3), T(3)});
}

TEST_CASE_TEMPLATE("sign: zeros, NaN and infinities", T, float, double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T neg_nan = std::copysign(nan, T(-1));
  // Blocks of 4: {+0, -0, 1, -3} {NaN, -NaN, 2, -2} {Inf, 1, -1, 0} {-Inf, 5} .
  const std::vector<T> x{T(0), -T(0), T(1), T(-3), nan, neg_nan, T(2), T(-2), inf, T(1), T(-1), T(0), -inf, T(5)};
  REQUIRE(std::signbit(neg_nan));
  gc::sign_vector<T> p;
  gc::blockwise_sign c{.block_size = 4};
  gc::compress(gc::exec::seq, c, x, p);
  REQUIRE(p.scales.size() == 4);
  CHECK(p.scales[0] == T(1));
  CHECK(std::isnan(p.scales[1]));
  CHECK(p.scales[2] == inf);
  CHECK(p.scales[3] == inf);
  // Bit set iff x_i < 0: -0, NaN and -NaN count as positive; -Inf as negative.
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(i);
    CHECK(p.is_negative(i) == (x[i] < T(0)));
  }
  CHECK(!p.is_negative(1));
  CHECK(!p.is_negative(5));
  CHECK(p.is_negative(12));
  const auto dec = gt::densify<T>(p, x.size());
  CHECK(dec[0] == T(1));
  CHECK(dec[1] == T(1));
  CHECK(dec[3] == T(-1));
  for (std::size_t i = 4; i < 8; ++i) CHECK(std::isnan(dec[i]));
  CHECK(dec[8] == inf);
  CHECK(dec[10] == -inf);
  CHECK(dec[11] == inf);
  CHECK(dec[12] == -inf);
  CHECK(dec[13] == inf);

  // All zeros (of both signs): scale +0, no bits, decodes to zeros.
  const std::vector<T> zeros{T(0), -T(0), -T(0)};
  gc::scaled_sign s;
  gc::compress(gc::exec::seq, s, zeros, p);
  REQUIRE(p.scales.size() == 1);
  CHECK(bits(p.scales[0]) == bits(T(0)));
  CHECK(p.negative == std::vector<std::uint64_t>{0});
  CHECK(gt::densify<T>(p, 3) == std::vector<T>{T(0), T(0), T(0)});
}

TEST_CASE_TEMPLATE("sign: empty input", T, float, double) {
  const std::vector<T> x;
  gc::sign_vector<T> p;
  p.reset(100, 7);  // stale state
  gc::scaled_sign s;
  gc::compress(gc::exec::seq, s, x, p);
  CHECK(p.dim == 0);
  CHECK(p.blocks() == 0);
  CHECK(p.scales.empty());
  CHECK(p.negative.empty());
  CHECK(p.sent_elements() == 0);
  gc::blockwise_sign b{.block_size = 3};
  p.reset(100, 7);
  gc::compress(gc::exec::seq, b, x, p);
  CHECK(p.dim == 0);
  CHECK(p.block_size == 3);
  CHECK(p.scales.empty());
  CHECK(p.negative.empty());
}

TEST_CASE_TEMPLATE("sign: blockwise_sign rejects block_size 0 and leaves the payload unchanged", T, float, double) {
  const auto x = gt::make_input<T>(gt::input_kind::normal, 10, 41);
  gc::sign_vector<T> p;
  gc::blockwise_sign good{.block_size = 3};
  gc::compress(gc::exec::seq, good, x, p);
  const auto before = p;
  gc::blockwise_sign bad{.block_size = 0};
  const std::string msg = error_message([&] { gc::compress(gc::exec::seq, bad, x, p); });
  CHECK(contains(msg, "gradcomp::blockwise_sign"));
  CHECK(names_word(msg, "block_size"));
  CHECK(p == before);
  // delta of the degenerate compressor is still a valid number (no division by zero).
  CHECK(std::isfinite(bad.delta(10)));
}

TEST_CASE("sign: double inputs near the overflow threshold still give a finite scale") {
  // ||x||_1 / d <= max |x_i| always fits the value type, so the scale must be finite and
  // C(x) must contract. (A double sum of |x_i| overflows here, so the mean has to be
  // formed without overflowing.)
  const double big = std::numeric_limits<double>::max() / 2 * 1.5;  // 0.75 * DBL_MAX
  const std::vector<double> x{big, -big, big / 2, big};
  gc::sign_vector<double> p;
  gc::scaled_sign s;
  gc::compress(gc::exec::seq, s, x, p);
  REQUIRE(p.scales.size() == 1);
  CHECK(std::isfinite(p.scales[0]));
  const long double exact = (3.5L * static_cast<long double>(big)) / 4.0L;
  CHECK(std::fabs(static_cast<long double>(p.scales[0]) - exact) <= exact * 1e-15L);
  const auto dec = gt::densify<double>(p, x.size());
  CHECK(gt::squared_distance<double>(x, dec) <= (1 - 1.0L / 4) * gt::squared_norm_ld<double>(x));
}

// =======================================================================================
// qsgd.

TEST_CASE_TEMPLATE("qsgd: every level follows the definition", T, float, double) {
  gc::quantized_vector<T> reused;
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      for (const std::uint32_t s : {1u, 2u, 7u, 256u}) {
        const std::uint64_t seed = 1000 + d * 7 + s;
        const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
        CAPTURE(d);
        CAPTURE(s);
        CAPTURE(seed);
        const auto x = gt::make_input<T>(kind, d, seed);
        gc::qsgd c{.s = s, .seed = seed, .step = 3};
        gc::quantized_vector<T> p;
        gc::compress(gc::exec::seq, c, x, p);
        CHECK(c.step == 4);
        REQUIRE(p.dim == d);
        REQUIRE(p.levels.size() == d);

        // scale = ||x||_2 / s: exactly the fixed-order double norm, and close to the exact one.
        const double norm = ref_l2_norm(std::span<const T>(x));
        CHECK(bits(p.scale) == bits(static_cast<T>(norm / static_cast<double>(s))));
        // Close to the exact ||x|| / s. (Only where the squares of the entries do not
        // underflow double, which only double inputs below ~1e-154 do; that case is the
        // "tiny double inputs" test below.)
        const long double exact_norm2 = gt::squared_norm_ld<T>(x);
        const long double exact_scale = std::sqrt(exact_norm2) / s;
        if (exact_norm2 == 0 || exact_norm2 >= 1e-280L)
          CHECK(std::fabs(static_cast<long double>(p.scale) - exact_scale) <=
                exact_scale * 1e-6L + 2 * ulp_of(static_cast<T>(exact_scale)));

        bool levels_ok = true;
        std::size_t first_bad = d;
        for (std::size_t i = 0; i < d && levels_ok; ++i) {
          const std::int32_t l = p.levels[i];
          if (p.scale == T(0)) {
            levels_ok = l == 0;
          } else {
            const double r = std::fabs(static_cast<double>(x[i])) / static_cast<double>(p.scale);
            const double fl = std::floor(r);
            const double mag = std::fabs(static_cast<double>(l));
            levels_ok = (mag == fl || mag == fl + 1) && (r != fl || mag == fl);  // exact: no rounding up
            if (l != 0) levels_ok = levels_ok && ((l < 0) == (x[i] < T(0)));
            if (x[i] == T(0)) levels_ok = levels_ok && l == 0;
            // |x_i| <= ||x|| = s * scale: at most s + 1 (when the scale is a normal number;
            // a subnormal scale is rounded by more than a relative ulp).
            if (p.scale >= std::numeric_limits<T>::min())
              levels_ok = levels_ok && mag <= static_cast<double>(s) + 1;
          }
          if (!levels_ok) first_bad = i;
        }
        CAPTURE(first_bad);
        CHECK(levels_ok);
        CHECK(p.level_bits == brute_level_bits(p.levels));

        // Reusing a payload gives the same result.
        gc::qsgd again{.s = s, .seed = seed, .step = 3};
        gc::compress(gc::exec::seq, again, x, reused);
        CHECK(reused == p);
      }
    }
  }
}

TEST_CASE_TEMPLATE("qsgd: deterministic for (seed, step), the step advances", T, float, double) {
  const auto x = gt::make_input<T>(gt::input_kind::normal, 1000, 51);
  gc::qsgd a{.s = 1, .seed = 77, .step = 5};
  gc::qsgd b{.s = 1, .seed = 77, .step = 5};
  gc::quantized_vector<T> pa, pb, pa2, pb2;
  gc::compress(gc::exec::seq, a, x, pa);
  gc::compress(gc::exec::seq, b, x, pb);
  CHECK(pa == pb);
  CHECK(a.step == 6);
  CHECK(b.step == 6);
  gc::compress(gc::exec::seq, a, x, pa2);
  gc::compress(gc::exec::seq, b, x, pb2);
  CHECK(pa2 == pb2);
  CHECK(a.step == 7);
  // The next step draws new numbers: with 1000 fractional parts the levels differ.
  CHECK(pa2.levels != pa.levels);
  CHECK(pa2.scale == pa.scale);
  // A compressor started at step 6 reproduces the second call.
  gc::qsgd c{.s = 1, .seed = 77, .step = 6};
  gc::quantized_vector<T> pc;
  gc::compress(gc::exec::seq, c, x, pc);
  CHECK(pc == pa2);
  // Another seed draws other numbers.
  gc::qsgd e{.s = 1, .seed = 78, .step = 5};
  gc::quantized_vector<T> pe;
  gc::compress(gc::exec::seq, e, x, pe);
  CHECK(pe.levels != pa.levels);
}

TEST_CASE_TEMPLATE("qsgd: exact grid points and zero input are deterministic", T, float, double) {
  {
    // ||(3, 4)|| = 5; with s = 5 the scale is 1 and every r is an integer.
    const std::vector<T> x{T(3), T(-4), T(0), -T(0)};
    for (std::uint64_t seed = 0; seed < 50; ++seed) {
      gc::qsgd c{.s = 5, .seed = seed};
      gc::quantized_vector<T> p;
      gc::compress(gc::exec::seq, c, x, p);
      CHECK(p.scale == T(1));
      CHECK(p.levels == std::vector<std::int32_t>{3, -4, 0, 0});
      CHECK(p.level_bits == 3);  // zigzag(-4) = 7
    }
  }
  {
    // One nonzero entry with s = 1: r = 1 there.
    std::vector<T> x(70, T(0));
    x[65] = T(-2.5);
    gc::qsgd c{.s = 1, .seed = 9};
    gc::quantized_vector<T> p;
    gc::compress(gc::exec::seq, c, x, p);
    CHECK(p.scale == T(2.5));
    std::vector<std::int32_t> want(70, 0);
    want[65] = -1;
    CHECK(p.levels == want);
    CHECK(p.level_bits == 1);
  }
  {
    // x = 0 (with negative zeros): scale 0, every level 0, one bit per level.
    const std::vector<T> x{T(0), -T(0), T(0), -T(0), T(0)};
    gc::qsgd c{.s = 3, .seed = 1, .step = 10};
    gc::quantized_vector<T> p;
    p.levels = {9, 9};
    p.level_bits = 17;
    gc::compress(gc::exec::seq, c, x, p);
    CHECK(p.dim == 5);
    CHECK(p.scale == T(0));
    CHECK(p.levels == std::vector<std::int32_t>(5, 0));
    CHECK(p.level_bits == 1);
    CHECK(c.step == 11);
    CHECK(gt::densify<T>(p, 5) == std::vector<T>(5, T(0)));
  }
  {
    // Empty input.
    const std::vector<T> x;
    gc::qsgd c{.s = 3};
    gc::quantized_vector<T> p;
    gc::compress(gc::exec::seq, c, x, p);
    CHECK(p.dim == 0);
    CHECK(p.levels.empty());
    CHECK(p.scale == T(0));
    CHECK(p.level_bits == 1);
    CHECK(c.step == 1);
  }
}

TEST_CASE_TEMPLATE("qsgd: unbiased, with variance within omega", T, float, double) {
  struct input_case {
    gt::input_kind kind;
    std::size_t d;
  };
  const input_case inputs[] = {{gt::input_kind::normal, 12},
                               {gt::input_kind::heavy_tailed, 9},
                               {gt::input_kind::with_zeros, 10},
                               {gt::input_kind::ties, 8},
                               {gt::input_kind::all_equal, 16},
                               {gt::input_kind::narrow_range, 6}};
  constexpr int draws = 4000;
  for (const auto& in : inputs) {
    for (const std::uint32_t s : {1u, 3u}) {
      for (const bool vary_seed : {true, false}) {
        const std::string kind_name = gt::to_string(in.kind);
        CAPTURE(kind_name);
        CAPTURE(in.d);
        CAPTURE(s);
        CAPTURE(vary_seed);
        const auto x = gt::make_input<T>(in.kind, in.d, 61);
        std::vector<long double> mean;
        long double mean_sq_err = 0;
        gc::qsgd stepping{.s = s, .seed = 4242};  // advances its own step on every call
        if (vary_seed) {
          draw_statistics<T>(
              x, draws,
              [&](int k) { return gc::qsgd{.s = s, .seed = 100000 + static_cast<std::uint64_t>(k), .step = 0}; },
              mean, mean_sq_err);
        } else {
          draw_statistics<T>(x, draws, [&](int) -> gc::qsgd& { return stepping; }, mean, mean_sq_err);
          CHECK(stepping.step == static_cast<std::uint64_t>(draws));
        }

        gc::qsgd probe{.s = s};
        gc::quantized_vector<T> p;
        gc::compress(gc::exec::seq, probe, x, p);
        const long double scale = p.scale;
        REQUIRE(scale > 0);
        const long double eps = std::numeric_limits<T>::epsilon();
        long double expected_var = 0, var_of_sq_err = 0;
        for (std::size_t i = 0; i < in.d; ++i) {
          CAPTURE(i);
          const long double r = std::fabs(static_cast<long double>(x[i])) / scale;
          const long double q = r - std::floor(r);
          const long double sigma = scale * std::sqrt(q * (1 - q) / draws);
          const long double slack = 4 * eps * (std::fabs(static_cast<long double>(x[i])) + scale);
          CHECK(std::fabs(mean[i] - static_cast<long double>(x[i])) <= 5 * sigma + slack);
          expected_var += scale * scale * q * (1 - q);
          var_of_sq_err += scale * scale * scale * scale * q * (1 - q) * (1 - 2 * q) * (1 - 2 * q);
        }
        const long double norm2 = gt::squared_norm_ld<T>(x);
        const long double omega = probe.omega(in.d);
        const long double sigma_sq_err = std::sqrt(var_of_sq_err / draws);
        const long double tiny = (std::is_same_v<T, float> ? 1e-5L : 1e-12L) * norm2;
        CAPTURE(static_cast<double>(mean_sq_err));
        CAPTURE(static_cast<double>(expected_var));
        CAPTURE(static_cast<double>(omega * norm2));
        CHECK(expected_var <= omega * norm2 * (1 + 1e-9L));
        CHECK(mean_sq_err <= omega * norm2 + 5 * sigma_sq_err + tiny);
        CHECK(std::fabs(mean_sq_err - expected_var) <= 5 * sigma_sq_err + tiny);
      }
    }
  }
}

TEST_CASE("qsgd: omega is min(d / s^2, sqrt(d) / s)") {
  CHECK(gc::qsgd{.s = 1}.omega(16) == 4.0);
  CHECK(gc::qsgd{.s = 2}.omega(16) == 2.0);
  CHECK(gc::qsgd{.s = 8}.omega(16) == 0.25);
  CHECK(gc::qsgd{.s = 1}.omega(1) == 1.0);
  CHECK(gc::qsgd{.s = 3}.omega(0) == 0.0);
}

TEST_CASE_TEMPLATE("qsgd: non-finite input throws naming the index and changes nothing", T, float, double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for (const std::size_t d : {1u, 2u, 65u, 4097u}) {
    for (const T bad : {nan, inf, -inf}) {
      for (const std::size_t where : {std::size_t{0}, d / 2, d - 1}) {
        CAPTURE(d);
        CAPTURE(bad);
        CAPTURE(where);
        auto x = gt::make_input<T>(gt::input_kind::normal, d, 71 + where);
        gc::qsgd c{.s = 2, .seed = 5, .step = 8};
        gc::quantized_vector<T> p;
        gc::compress(gc::exec::seq, c, std::span<const T>(x.data(), std::min<std::size_t>(d, 3)), p);  // non-trivial prior state
        const auto before = p;
        const std::uint64_t step_before = c.step;
        x[where] = bad;
        const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
        CHECK(contains(msg, "gradcomp::qsgd"));
        CHECK(contains(msg, "x[" + std::to_string(where) + "]"));
        CHECK(p == before);
        CHECK(c.step == step_before);
      }
    }
  }
  // Several bad entries: the first one is named.
  std::vector<T> x(10, T(1));
  x[3] = inf;
  x[7] = nan;
  gc::qsgd c{.s = 1};
  gc::quantized_vector<T> p;
  const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
  CHECK(contains(msg, "x[3]"));
}

TEST_CASE_TEMPLATE("qsgd: bad s throws naming s and changes nothing", T, float, double) {
  const auto x = gt::make_input<T>(gt::input_kind::normal, 20, 81);
  gc::quantized_vector<T> p;
  gc::qsgd good{.s = 4, .seed = 1};
  gc::compress(gc::exec::seq, good, x, p);
  const auto before = p;
  for (const std::uint32_t s : {0u, gc::qsgd::max_levels + 1, std::numeric_limits<std::uint32_t>::max()}) {
    CAPTURE(s);
    gc::qsgd bad{.s = s, .seed = 1, .step = 2};
    const std::string msg = error_message([&] { gc::compress(gc::exec::seq, bad, x, p); });
    CHECK(contains(msg, "gradcomp::qsgd"));
    CHECK(names_word(msg, "s"));
    CHECK(contains(msg, std::to_string(s)));
    CHECK(p == before);
    CHECK(bad.step == 2);
  }
  // The largest allowed s works.
  gc::qsgd widest{.s = gc::qsgd::max_levels};
  CHECK_NOTHROW(gc::compress(gc::exec::seq, widest, x, p));
}

TEST_CASE("qsgd: tiny double inputs whose squares underflow are still quantized without bias") {
  // ||x|| ~ 1e-200 (or a vector of subnormals) is an ordinary double; the squares of its
  // entries underflow. QSGD must stay unbiased: the scale ||x|| / s is representable, so
  // it may not collapse to 0 (which would decode every such x to 0).
  const std::vector<std::vector<double>> inputs{{1e-200, -3e-201, 2e-200},
                                                gt::make_input<double>(gt::input_kind::denormals, 40, 131)};
  for (const auto& x : inputs) {
    CAPTURE(x[0]);
    gc::quantized_vector<double> p;
    gc::qsgd c{.s = 1, .seed = 3};
    gc::compress(gc::exec::seq, c, x, p);
    const long double exact_scale = std::sqrt(gt::squared_norm_ld<double>(x));
    REQUIRE(exact_scale > 0);
    CHECK(std::fabs(static_cast<long double>(p.scale) - exact_scale) <=
          exact_scale * 1e-6L + 2 * ulp_of(static_cast<double>(exact_scale)));
    std::vector<long double> mean;
    long double mse = 0;
    draw_statistics<double>(
        x, 1000, [](int k) { return gc::qsgd{.s = 1, .seed = 500 + static_cast<std::uint64_t>(k)}; }, mean, mse);
    long double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(mean[i] - static_cast<long double>(x[i])));
    // sigma <= scale * 0.5 / sqrt(1000) ~ 0.016 ||x||: 0.1 ||x|| is > 6 sigma.
    CAPTURE(static_cast<double>(worst));
    CHECK(worst <= 0.1L * exact_scale);
  }
}

// =======================================================================================
// grid_rounding.

TEST_CASE_TEMPLATE("grid_rounding: nearest rounds every entry to the nearest grid point", T, float, double) {
  const double spacings[] = {1.0, 0.25, 0.1, 1e-3, 3.7, 1e-6};
  gc::quantized_vector<T> reused;
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      for (const double spacing : spacings) {
        const std::uint64_t seed = 2000 + d;
        const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
        CAPTURE(d);
        CAPTURE(spacing);
        CAPTURE(seed);
        const auto x = gt::make_input<T>(kind, d, seed);
        const T q = static_cast<T>(spacing);
        bool out_of_range = false;
        for (const T v : x)
          if (std::fabs(static_cast<long double>(v)) / q >= 2147483646.0L) out_of_range = true;
        gc::grid_rounding c{.spacing = spacing, .seed = 1, .step = 0};
        gc::quantized_vector<T> p;
        if (out_of_range) {
          const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
          CHECK(contains(msg, "gradcomp::grid_rounding"));
          CHECK(c.step == 0);
          continue;
        }
        gc::compress(gc::exec::seq, c, x, p);
        CHECK(c.step == 1);
        REQUIRE(p.dim == d);
        REQUIRE(p.levels.size() == d);
        CHECK(bits(p.scale) == bits(q));
        CHECK(p.level_bits == brute_level_bits(p.levels));

        bool levels_ok = true;
        std::size_t first_bad = d;
        for (std::size_t i = 0; i < d && levels_ok; ++i) {
          const double want = std::round(static_cast<double>(x[i]) / static_cast<double>(q));
          levels_ok = static_cast<double>(p.levels[i]) == want;
          if (!levels_ok) first_bad = i;
        }
        CAPTURE(first_bad);
        CHECK(levels_ok);

        // |x_i - C(x)_i| <= q/2 up to the rounding of q * l_i in T; in total d q^2 / 4.
        const auto dec = gt::densify<T>(p, d);
        long double err = 0, slack = 0;
        bool elementwise_ok = true;
        for (std::size_t i = 0; i < d; ++i) {
          const long double e = std::fabs(static_cast<long double>(x[i]) - static_cast<long double>(dec[i]));
          const long double u = ulp_of(static_cast<T>(std::fabs(x[i]) + q));
          if (!(e <= static_cast<long double>(q) / 2 + u)) elementwise_ok = false;
          err += e * e;
          slack += static_cast<long double>(q) * u + u * u;
        }
        CHECK(elementwise_ok);
        const long double dd = static_cast<long double>(d);
        CHECK(err <= dd * q * q / 4 + slack);
        CHECK(err <= static_cast<long double>(c.absolute_bound(d)) + slack);
        CHECK(c.absolute_bound(d) >= static_cast<double>(d) * spacing * spacing / 4);

        gc::grid_rounding again{.spacing = spacing};
        gc::compress(gc::exec::seq, again, x, reused);
        CHECK(reused == p);
      }
    }
  }
}

TEST_CASE_TEMPLATE("grid_rounding: hand-computed levels (ties away from zero)", T, float, double) {
  const std::vector<T> x{T(0.5), T(-0.5), T(1.5), T(2.5), T(-2.5), T(0.49), T(-0.51), T(0), -T(0), T(7)};
  gc::grid_rounding c{.spacing = 1.0};
  gc::quantized_vector<T> p;
  gc::compress(gc::exec::seq, c, x, p);
  CHECK(p.levels == std::vector<std::int32_t>{1, -1, 2, 3, -3, 0, -1, 0, 0, 7});
  CHECK(p.level_bits == 4);  // zigzag(7) = 14
  gc::grid_rounding half{.spacing = 0.5};
  gc::compress(gc::exec::seq, half, x, p);
  CHECK(p.scale == T(0.5));
  CHECK(p.levels == std::vector<std::int32_t>{1, -1, 3, 5, -5, 1, -1, 0, 0, 14});
}

TEST_CASE_TEMPLATE("grid_rounding: stochastic levels are floor or floor + 1 and within d q^2", T, float, double) {
  const double spacings[] = {1.0, 0.3, 1e-3};
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      for (const double spacing : spacings) {
        const std::uint64_t seed = 3000 + d;
        const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
        CAPTURE(d);
        CAPTURE(spacing);
        const auto x = gt::make_input<T>(kind, d, seed);
        const T q = static_cast<T>(spacing);
        bool out_of_range = false;
        for (const T v : x)
          if (std::fabs(static_cast<long double>(v)) / q >= 2147483646.0L) out_of_range = true;
        if (out_of_range) continue;  // the range check is covered by the nearest-mode cases
        gc::grid_rounding c{.spacing = spacing, .stochastic = true, .seed = seed, .step = 9};
        gc::quantized_vector<T> p;
        gc::compress(gc::exec::seq, c, x, p);
        CHECK(c.step == 10);
        REQUIRE(p.levels.size() == d);
        CHECK(bits(p.scale) == bits(q));
        CHECK(p.level_bits == brute_level_bits(p.levels));
        bool levels_ok = true;
        std::size_t first_bad = d;
        for (std::size_t i = 0; i < d && levels_ok; ++i) {
          const double r = static_cast<double>(x[i]) / static_cast<double>(q);
          const double fl = std::floor(r);
          const double l = p.levels[i];
          levels_ok = (l == fl || l == fl + 1) && (r != fl || l == fl);
          if (!levels_ok) first_bad = i;
        }
        CAPTURE(first_bad);
        CHECK(levels_ok);

        const auto dec = gt::densify<T>(p, d);
        long double err = 0, slack = 0;
        for (std::size_t i = 0; i < d; ++i) {
          const long double e = std::fabs(static_cast<long double>(x[i]) - static_cast<long double>(dec[i]));
          const long double u = ulp_of(static_cast<T>(std::fabs(x[i]) + q));
          err += e * e;
          slack += 2 * static_cast<long double>(q) * u + u * u;
        }
        CHECK(err <= static_cast<long double>(d) * q * q + slack);
        CHECK(err <= static_cast<long double>(c.absolute_bound(d)) + slack);

        // Same (seed, step): same payload.
        gc::grid_rounding again{.spacing = spacing, .stochastic = true, .seed = seed, .step = 9};
        gc::quantized_vector<T> p2;
        gc::compress(gc::exec::seq, again, x, p2);
        CHECK(p2 == p);
      }
    }
  }
}

TEST_CASE_TEMPLATE("grid_rounding: stochastic rounding is unbiased", T, float, double) {
  constexpr int draws = 4000;
  for (const double spacing : {1.0, 0.3, 0.01}) {
    for (const gt::input_kind kind : {gt::input_kind::normal, gt::input_kind::ties, gt::input_kind::with_zeros}) {
      CAPTURE(spacing);
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      const std::size_t d = 10;
      const auto x = gt::make_input<T>(kind, d, 91);
      std::vector<long double> mean;
      long double mse = 0;
      draw_statistics<T>(
          x, draws,
          [&](int k) {
            return gc::grid_rounding{
                .spacing = spacing, .stochastic = true, .seed = 7000 + static_cast<std::uint64_t>(k), .step = 1};
          },
          mean, mse);
      const long double q = static_cast<T>(spacing);
      const long double eps = std::numeric_limits<T>::epsilon();
      long double expected_mse = 0;
      for (std::size_t i = 0; i < d; ++i) {
        CAPTURE(i);
        const long double r = static_cast<long double>(x[i]) / q;
        const long double f = r - std::floor(r);
        const long double sigma = q * std::sqrt(f * (1 - f) / draws);
        CHECK(std::fabs(mean[i] - static_cast<long double>(x[i])) <=
              5 * sigma + 4 * eps * (std::fabs(static_cast<long double>(x[i])) + q));
        expected_mse += q * q * f * (1 - f);
      }
      // Each entry's variance is q^2 f (1 - f) <= q^2 / 4.
      CHECK(expected_mse <= static_cast<long double>(d) * q * q / 4);
      CHECK(mse <= static_cast<long double>(d) * q * q / 4 * 1.2L + 1e-6L * q * q);
    }
  }
}

TEST_CASE_TEMPLATE("grid_rounding: bad spacing throws naming spacing and changes nothing", T, float, double) {
  const auto x = gt::make_input<T>(gt::input_kind::normal, 12, 101);
  gc::quantized_vector<T> p;
  gc::grid_rounding good{.spacing = 0.5};
  gc::compress(gc::exec::seq, good, x, p);
  const auto before = p;
  std::vector<double> bad_spacings{0.0,
                                   -0.0,
                                   -1.0,
                                   -std::numeric_limits<double>::denorm_min(),
                                   std::numeric_limits<double>::quiet_NaN(),
                                   std::numeric_limits<double>::infinity(),
                                   -std::numeric_limits<double>::infinity()};
  if constexpr (std::is_same_v<T, float>) {
    bad_spacings.push_back(1e-50);  // positive in double, 0 in float
    bad_spacings.push_back(1e39);   // finite in double, Inf in float
  }
  for (const double spacing : bad_spacings) {
    for (const bool stochastic : {false, true}) {
      CAPTURE(spacing);
      CAPTURE(stochastic);
      gc::grid_rounding c{.spacing = spacing, .stochastic = stochastic, .seed = 1, .step = 4};
      const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
      CHECK(contains(msg, "gradcomp::grid_rounding"));
      CHECK(names_word(msg, "spacing"));
      CHECK(p == before);
      CHECK(c.step == 4);
    }
  }
}

TEST_CASE_TEMPLATE("grid_rounding: levels beyond the int32 range throw", T, float, double) {
  gc::quantized_vector<T> p;
  gc::grid_rounding warmup{.spacing = 1.0};
  const std::vector<T> small{T(1), T(-2)};
  gc::compress(gc::exec::seq, warmup, small, p);
  const auto before = p;

  // Largest accepted |x| / q: below 2^31 - 2.
  const T largest_ok = std::is_same_v<T, float> ? T(2147483520.0) : T(2147483645.0);  // float: 2^31 - 128
  for (const bool stochastic : {false, true}) {
    CAPTURE(stochastic);
    {
      const std::vector<T> x{T(0), largest_ok, -largest_ok};
      gc::grid_rounding c{.spacing = 1.0, .stochastic = stochastic};
      gc::quantized_vector<T> out;
      REQUIRE_NOTHROW(gc::compress(gc::exec::seq, c, x, out));
      CHECK(out.levels == std::vector<std::int32_t>{0, static_cast<std::int32_t>(largest_ok),
                                                     -static_cast<std::int32_t>(largest_ok)});
      CHECK(out.level_bits == 32);
    }
    std::vector<T> too_big{std::is_same_v<T, float> ? T(2147483648.0) : T(2147483646.0), T(1e10), T(1e30)};
    for (const T big : too_big) {
      for (const T sign : {T(1), T(-1)}) {
        for (const std::size_t where : {0u, 2u}) {
          CAPTURE(big);
          CAPTURE(sign);
          CAPTURE(where);
          std::vector<T> x{T(1), T(2), T(3)};
          x[where] = sign * big;
          gc::grid_rounding c{.spacing = 1.0, .stochastic = stochastic, .step = 6};
          const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
          CHECK(contains(msg, "gradcomp::grid_rounding"));
          CHECK(contains(msg, "x[" + std::to_string(where) + "]"));
          CHECK(p == before);
          CHECK(c.step == 6);
        }
      }
    }
  }
  // The limit scales with the spacing: |x| / 0.5 >= 2^31 - 2 for |x| = 2^30 - 1.
  {
    gc::grid_rounding c{.spacing = 0.5};
    const std::vector<T> x{T(1073741823.0)};
    if constexpr (std::is_same_v<T, double>) {
      CHECK_THROWS_AS(gc::compress(gc::exec::seq, c, x, p), gc::error);
      const std::vector<T> ok{T(1073741822.5)};
      CHECK_NOTHROW(gc::compress(gc::exec::seq, c, ok, p));
      CHECK(p.levels == std::vector<std::int32_t>{2147483645});
    } else {
      // 2^30 - 1 is 2^30 in float: 2^31 levels.
      CHECK_THROWS_AS(gc::compress(gc::exec::seq, c, x, p), gc::error);
    }
  }
}

TEST_CASE_TEMPLATE("grid_rounding: non-finite input throws naming the index and changes nothing", T, float, double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for (const bool stochastic : {false, true}) {
    for (const std::size_t d : {1u, 5u, 100u}) {
      for (const T bad : {nan, inf, -inf}) {
        for (const std::size_t where : {std::size_t{0}, d / 2, d - 1}) {
          CAPTURE(stochastic);
          CAPTURE(d);
          CAPTURE(bad);
          CAPTURE(where);
          auto x = gt::make_input<T>(gt::input_kind::normal, d, 111 + where);
          gc::grid_rounding c{.spacing = 0.1, .stochastic = stochastic, .seed = 2, .step = 3};
          gc::quantized_vector<T> p;
          gc::compress(gc::exec::seq, c, x, p);
          const auto before = p;
          const std::uint64_t step_before = c.step;
          x[where] = bad;
          const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
          CHECK(contains(msg, "gradcomp::grid_rounding"));
          CHECK(contains(msg, "x[" + std::to_string(where) + "]"));
          CHECK(p == before);
          CHECK(c.step == step_before);
        }
      }
    }
  }
}

TEST_CASE("grid_rounding: absolute_bound is d q^2 / 4 (nearest) or d q^2 (stochastic), rounded up") {
  for (const double spacing : {1.0, 0.1, 3e-5, 7.0}) {
    for (const std::size_t d : {0u, 1u, 10u, 1000000u}) {
      CAPTURE(spacing);
      CAPTURE(d);
      const gc::grid_rounding nearest{.spacing = spacing};
      const gc::grid_rounding stochastic{.spacing = spacing, .stochastic = true};
      const long double dd = static_cast<long double>(d), q = spacing;
      CHECK(static_cast<long double>(nearest.absolute_bound(d)) >= dd * q * q / 4);
      CHECK(static_cast<long double>(nearest.absolute_bound(d)) <= dd * q * q / 4 * (1 + 1e-14L));
      CHECK(static_cast<long double>(stochastic.absolute_bound(d)) >= dd * q * q);
      CHECK(static_cast<long double>(stochastic.absolute_bound(d)) <= dd * q * q * (1 + 1e-14L));
    }
  }
}

// =======================================================================================
// Finite input near the largest value of T: a quantizer's payload decodes to finite values,
// or the call throws gc::error before writing anything. (qsgd{.s = 8} on {FLT_MAX, -FLT_MAX,
// 1, 2} used to decode to +-inf, and under error feedback the residual became inf.)

namespace {

template <class T>
bool decodes_finite(const gc::quantized_vector<T>& p) {
  for (const T v : gt::densify<T>(p, p.dim))
    if (!std::isfinite(v)) return false;
  return true;
}

/// By brute force: the largest level a draw can give some x_i (upper(|x_i| / scale)) decodes
/// to +-inf as the payload computes it, scale * T(level) in T.
template <class T, class Upper>
bool some_level_overflows(const std::vector<T>& x, T scale, Upper upper) {
  for (const T v : x) {
    const double level = upper(std::fabs(static_cast<double>(v)) / static_cast<double>(scale));
    if (!std::isfinite(scale * static_cast<T>(level))) return true;
  }
  return false;
}

/// Runs c on x for `steps` consecutive steps. Either every call throws gc::error naming the
/// compressor, leaving out and the step alone, or every call decodes to finite values.
/// Returns whether the calls threw.
template <class T, class C>
bool finite_or_throws(const std::vector<T>& x, C c, const std::string& name, int steps = 12) {
  gc::quantized_vector<T> out;
  gc::grid_rounding warmup{.spacing = 0.5};
  gc::compress(gc::exec::seq, warmup, std::vector<T>{T(1), T(-3)}, out);
  const auto before = out;
  const std::uint64_t step0 = c.step;
  bool threw = false, decoded_finite = true;
  for (int k = 0; k < steps; ++k) {
    try {
      gc::compress(gc::exec::seq, c, x, out);
      decoded_finite = decoded_finite && decodes_finite(out);
    } catch (const gc::error& e) {
      threw = true;
      CHECK(contains(e.what(), "gradcomp::" + name));
      CHECK(contains(e.what(), "overflows the value type"));
      CHECK(out == before);
      CHECK(c.step == step0);
    }
  }
  if (!threw) CHECK(decoded_finite);
  CHECK((!threw || c.step == step0));  // the same verdict on every step: it does not depend on the draws
  return threw;
}

/// Inputs near max(T): a few entries at fractions of max(T) (both signs), and small ones.
template <class T>
std::vector<std::vector<T>> near_max_inputs() {
  const T mx = std::numeric_limits<T>::max();
  std::vector<std::vector<T>> inputs{{mx, -mx, T(1), T(2)},
                                     {mx},
                                     {-mx},
                                     {std::nextafter(mx, T(0)), T(0)},
                                     {mx, T(0), T(0), T(0), T(0), T(0), T(0), T(0)},
                                     {mx / 2, -mx / 2},
                                     {mx / 3, mx / 3, mx / 3, -mx / 3},
                                     {T(0.75) * mx, T(1e-30), -T(0.5) * mx}};
  std::vector<T> many(100);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = (i % 2 ? T(-1) : T(1)) * mx / T(11 + i % 7);
  inputs.push_back(many);
  return inputs;
}

}  // namespace

TEST_CASE_TEMPLATE("qsgd: the issue's {max, -max, 1, 2} with s = 8 throws before writing, on every step", T, float,
                   double) {
  const T mx = std::numeric_limits<T>::max();
  const std::vector<T> x{mx, -mx, T(1), T(2)};
  for (const std::uint64_t seed : {0u, 1u, 7u, 12345u}) {
    CAPTURE(seed);
    gc::qsgd c{.s = 8, .seed = seed, .step = 3};
    gc::quantized_vector<T> p;
    gc::compress(gc::exec::seq, c, std::vector<T>{T(1), T(2)}, p);
    const auto before = p;
    for (int k = 0; k < 20; ++k) {
      const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, x, p); });
      CHECK(contains(msg, "gradcomp::qsgd"));
      CHECK(contains(msg, "x[0]"));
      CHECK(contains(msg, "level 6"));  // r = 8 / sqrt(2) = 5.66: level 5 or 6, and 6 * max / 5.66 overflows
      CHECK(contains(msg, "overflows the value type"));
      CHECK(p == before);
      CHECK(c.step == 4);
    }
  }
}

TEST_CASE_TEMPLATE("qsgd: near the largest value it throws exactly when some draw could decode to inf", T, float,
                   double) {
  const auto ceil_level = [](double r) { return std::ceil(r); };
  std::size_t threw = 0, passed = 0;
  for (const auto& x : near_max_inputs<T>()) {
    for (const std::uint32_t s : {1u, 2u, 3u, 8u, 100u, 65536u, gc::qsgd::max_levels}) {
      CAPTURE(x.size());
      CAPTURE(x[0]);
      CAPTURE(s);
      const gc::qsgd c{.s = s, .seed = 5, .step = 1};
      // The scale as the reference defines it (its accuracy is checked by the tests above);
      // a scale T cannot hold throws too.
      T scale = T(0);
      bool scale_fits = true;
      try {
        scale = c.checked_scale(std::span<const T>(x), gc::detail::l2_norm(std::span<const T>(x)));
      } catch (const gc::error& e) {
        scale_fits = false;
        CHECK(contains(e.what(), "scale ||x||_2 / s"));
        // ||x|| / s beyond max(T) by more than rounding.
        CHECK(std::sqrt(gt::squared_norm_ld<T>(x)) / s > static_cast<long double>(std::numeric_limits<T>::max()));
      }
      const bool expect_throw = !scale_fits || some_level_overflows(x, scale, ceil_level);
      const bool did_throw = finite_or_throws(x, c, "qsgd");
      CHECK(did_throw == expect_throw);
      (did_throw ? threw : passed) += 1;
    }
  }
  // Both verdicts occur in this sweep.
  CHECK(threw > 5);
  CHECK(passed > 5);
  // One entry at max(T) with s = 1: the scale is max(T) and the level exactly 1. No throw.
  const std::vector<T> single{std::numeric_limits<T>::max()};
  gc::qsgd c{.s = 1};
  gc::quantized_vector<T> p;
  gc::compress(gc::exec::seq, c, single, p);
  CHECK(p.scale == std::numeric_limits<T>::max());
  CHECK(p.levels == std::vector<std::int32_t>{1});
}

TEST_CASE("qsgd: double input whose norm exceeds DBL_MAX is quantized when ||x|| / s fits") {
  const double mx = std::numeric_limits<double>::max();
  const std::vector<double> x(8, mx / 2);  // ||x|| = sqrt(2) max
  gc::qsgd c{.s = 1000, .seed = 9};
  gc::quantized_vector<double> p;
  gc::compress(gc::exec::seq, c, x, p);
  const long double exact_scale = std::sqrt(8.0L) * (static_cast<long double>(mx) / 2) / 1000;
  CHECK(std::fabs(static_cast<long double>(p.scale) - exact_scale) <= exact_scale * 1e-15L);
  // r = 1000 / sqrt(8) = 353.55: levels 353 or 354.
  for (const std::int32_t l : p.levels) CHECK((l == 353 || l == 354));
  CHECK(decodes_finite(p));
  // Still unbiased: the mean of many draws is x.
  std::vector<long double> mean;
  long double mse = 0;
  draw_statistics<double>(
      x, 2000, [](int k) { return gc::qsgd{.s = 1000, .seed = 77 + static_cast<std::uint64_t>(k)}; }, mean, mse);
  for (std::size_t i = 0; i < x.size(); ++i)
    CHECK(std::fabs(mean[i] - static_cast<long double>(x[i])) <= 0.05L * exact_scale);  // sigma ~ 0.011 scale
  // With s = 1 the scale itself, sqrt(2) max, does not fit: gc::error, out and step unchanged.
  gc::qsgd one{.s = 1, .step = 4};
  const auto before = p;
  const std::string msg = error_message([&] { gc::compress(gc::exec::seq, one, x, p); });
  CHECK(contains(msg, "scale ||x||_2 / s"));
  CHECK(contains(msg, "overflows the value type"));
  CHECK(p == before);
  CHECK(one.step == 4);
}

TEST_CASE_TEMPLATE("grid_rounding: near the largest value it throws exactly when a possible level decodes to inf", T,
                   float, double) {
  const T mx = std::numeric_limits<T>::max();
  const auto nearest = [](double r) { return std::round(r); };
  const auto stochastic_upper = [](double r) { return std::ceil(r); };
  std::size_t threw = 0, passed = 0;
  // Spacings above max / 2^31: some int32 levels decode to inf (below it none can, and the
  // unit tests above cover those).
  const T threshold = mx / T(2147483648.0);
  for (const T q : {threshold * T(1.01), threshold * T(2), threshold * T(1000), threshold * T(1 << 20), mx / T(1000),
                    mx / T(3), T(0.6) * mx, mx / T(2), mx}) {
    for (const auto& x : near_max_inputs<T>()) {
      for (const bool stochastic : {false, true}) {
        CAPTURE(q);
        CAPTURE(x.size());
        CAPTURE(x[0]);
        CAPTURE(stochastic);
        const gc::grid_rounding c{.spacing = static_cast<double>(q), .stochastic = stochastic, .seed = 3};
        const bool expect_throw =
            stochastic ? some_level_overflows(x, q, stochastic_upper) : some_level_overflows(x, q, nearest);
        const bool did_throw = finite_or_throws(x, c, "grid_rounding");
        CHECK(did_throw == expect_throw);
        (did_throw ? threw : passed) += 1;
      }
    }
  }
  CHECK(threw > 5);
  CHECK(passed > 5);
  // Hand-checked: q = 0.6 max, x = max: r = 1.67 rounds to 2, and 2q = 1.2 max overflows.
  gc::grid_rounding c{.spacing = 0.6 * static_cast<double>(mx)};
  gc::quantized_vector<T> p;
  const std::string msg = error_message([&] { gc::compress(gc::exec::seq, c, std::vector<T>{T(1), mx}, p); });
  CHECK(contains(msg, "x[1]"));
  CHECK(contains(msg, "level 2"));
  // x = 0.75 max rounds to 1 (r = 1.25): 0.6 max, finite.
  gc::compress(gc::exec::seq, c, std::vector<T>{T(0.75) * mx, -T(0.75) * mx}, p);
  CHECK(p.levels == std::vector<std::int32_t>{1, -1});
}

// =======================================================================================
// identity.

TEST_CASE_TEMPLATE("identity: decodes to x bit for bit", T, float, double) {
  using U = bits_of<T>;
  const T nan_payload = std::bit_cast<T>(static_cast<U>(bits(std::numeric_limits<T>::quiet_NaN()) | U{0x5a}));
  const std::vector<T> specials{std::numeric_limits<T>::quiet_NaN(),
                                std::copysign(std::numeric_limits<T>::quiet_NaN(), T(-1)),
                                nan_payload,
                                -T(0),
                                T(0),
                                std::numeric_limits<T>::denorm_min(),
                                -std::numeric_limits<T>::denorm_min() * T(37),
                                std::numeric_limits<T>::min(),
                                std::numeric_limits<T>::max(),
                                std::numeric_limits<T>::lowest(),
                                std::numeric_limits<T>::infinity(),
                                -std::numeric_limits<T>::infinity(),
                                T(1) / T(3)};
  std::vector<std::vector<T>> inputs{specials};
  for (const gt::input_kind kind : gt::all_input_kinds)
    for (const std::size_t d : {0u, 1u, 65u, 1000u}) inputs.push_back(gt::make_input<T>(kind, d, 121));

  gc::identity c;
  gc::dense_vector<T> reused;
  for (const auto& x : inputs) {
    CAPTURE(x.size());
    gc::dense_vector<T> p;
    gc::compress(gc::exec::seq, c, x, p);
    CHECK(gt::same_bits(p.values, x));
    CHECK(p.dim() == x.size());
    CHECK(p.sent_elements() == x.size());
    // -0 is the additive identity of IEEE arithmetic: -0 + v == v bit for bit, -0 included.
    std::vector<T> dec(x.size(), -T(0));
    gc::decompress_add(p, std::span<T>(dec));
    CHECK(gt::same_bits(dec, x));
    gc::compress(gc::exec::seq, c, std::span<const T>(x), reused);
    CHECK(gt::same_bits(reused.values, x));
  }
  // A const identity compresses too (it has no state).
  const gc::identity cc;
  gc::dense_vector<T> p;
  gc::compress(gc::exec::seq, cc, specials, p);
  CHECK(gt::same_bits(p.values, specials));
}

TEST_CASE("identity: delta 1, omega 0, absolute bound 0") {
  const gc::identity c;
  for (const std::size_t d : {0u, 1u, 2u, 1000u, 1u << 30}) {
    CAPTURE(d);
    CHECK(c.delta(d) == 1.0);
    CHECK(c.omega(d) == 0.0);
    CHECK(c.absolute_bound(d) == 0.0);
  }
}
