// Unit tests for onebit (1-bit SGD, Seide et al. 2014, as GRACE's OneBit) and its payload
// two_level_vector: hand-computed payloads (mixed signs, one group empty, zeros of both signs,
// NaN and infinities, short last blocks, the empty vector), the documented computation bit for
// bit against an independent re-implementation of the fixed summation order, the bound (an
// exact identity: the decode is a projection) and "never worse than blockwise_sign" on the
// same blocks, the double overflow rescue, and the errors.
#include <doctest/doctest.h>

#include <gradcomp/gradcomp.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "error_message.hpp"
#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

using gt::bits;
using gt::contains;
using gt::error_message;

// ---------------------------------------------------------------------------------------
// An independent implementation of the documented computation (detail/reduce.hpp and
// detail/group_means.hpp), bottom-up where the library recurses top-down: blocks of 4096
// elements; inside one, element i is row i / 8 of lane i % 8, each lane's rows (zeros up to a
// power of two) added in adjacent pairs level by level, the lanes folded as
// ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)); the block sums (zeros up to a power of two) added in
// adjacent pairs. A group's sum is that order over the whole block with |x_i| for the group's
// elements and 0 for the others.

GRADCOMP_NO_FP_CONTRACT double pairwise_levels(std::vector<double>& v) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t n = v.size(); n > 1; n /= 2)
    for (std::size_t i = 0; i < n / 2; ++i) v[i] = v[2 * i] + v[2 * i + 1];
  return v.empty() ? 0.0 : v[0];
}

template <class T, class F>
GRADCOMP_NO_FP_CONTRACT double ref_ordered_sum(std::span<const T> x, F term) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::vector<double> block_sums;
  for (std::size_t begin = 0; begin < x.size(); begin += 4096) {
    const std::size_t end = std::min(x.size(), begin + 4096);
    const std::size_t rows = std::bit_ceil((end - begin + 7) / 8);
    double a[8];
    for (std::size_t l = 0; l < 8; ++l) {
      std::vector<double> lane(rows, 0.0);
      for (std::size_t i = begin + l; i < end; i += 8) lane[(i - begin) / 8] = term(x[i]);
      a[l] = pairwise_levels(lane);
    }
    block_sums.push_back(((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])));
  }
  block_sums.resize(std::bit_ceil(std::max<std::size_t>(block_sums.size(), 1)), 0.0);
  return pairwise_levels(block_sums);
}

/// The documented mean of a group: its |x_i| summed in the fixed order over the block, divided
/// by its count; 0 for an empty group; for double input whose sum overflows, the sum again on
/// |x_i| 2^-e (2^e just above the group's largest finite |x_i|), divided, scaled back.
template <class T>
double ref_group_mean(std::span<const T> block, bool negatives) {
  const auto in_group = [negatives](T v) { return (v < T(0)) == negatives; };
  const auto count = static_cast<double>(std::count_if(block.begin(), block.end(), in_group));
  if (count == 0) return 0.0;
  const double sum = ref_ordered_sum(block, [&](T v) { return in_group(v) ? std::fabs(static_cast<double>(v)) : 0.0; });
  if (!std::isinf(sum) || sizeof(T) == 4) return sum / count;
  double largest = 0;
  for (const T v : block)
    if (in_group(v) && std::isfinite(static_cast<double>(v)))
      largest = std::max(largest, std::fabs(static_cast<double>(v)));
  if (largest == 0) return sum / count;
  int e = 0;
  std::frexp(largest, &e);
  const double scaled = ref_ordered_sum(
      block, [&](T v) { return in_group(v) ? std::ldexp(std::fabs(static_cast<double>(v)), -e) : 0.0; });
  return std::ldexp(scaled / count, e);
}

/// The payload onebit must send for x with blocks of b, built from the definition.
template <class T>
gc::two_level_vector<T> ref_onebit(const std::vector<T>& x, std::size_t b) {
  gc::two_level_vector<T> p;
  p.dim = x.size();
  p.block_size = b;
  for (std::size_t begin = 0; begin < x.size(); begin += std::min(b, x.size() - begin)) {
    const std::span<const T> block(x.data() + begin, std::min(b, x.size() - begin));
    const double low = ref_group_mean(block, true), high = ref_group_mean(block, false);
    p.lows.push_back(low == 0 ? T(0) : static_cast<T>(-low));  // +0 for an empty group
    p.highs.push_back(static_cast<T>(high));
  }
  p.negative.assign((x.size() + 63) / 64, 0);
  for (std::size_t i = 0; i < x.size(); ++i)
    if (x[i] < T(0)) p.negative[i / 64] |= std::uint64_t{1} << (i % 64);
  return p;
}

/// The gap from |v| to the next representable value of T above it.
template <class T>
long double ulp_of(T v) {
  const T a = std::fabs(v);
  return static_cast<long double>(std::nextafter(a, std::numeric_limits<T>::infinity())) - static_cast<long double>(a);
}

/// Per block, what the exact (long double) group means are, and how far the sent ones are
/// from them: the error of a payload is ||x||^2 - sum (S0^2/n0 + S1^2/n1) + sum n_g delta_g^2.
template <class T>
struct exact_blocks {
  long double kept = 0;      // sum over blocks and groups of S_g^2 / n_g
  long double rounding = 0;  // sum over blocks and groups of n_g (sent mean - exact mean)^2
  bool close = true;         // every sent mean within rel |exact| + ulp(sent) of the exact one
};

/// rel: how far the double sum and division may be from the exact mean, relative to it; the
/// rounding to T adds up to an ulp of T (an absolute step for subnormal means).
template <class T>
exact_blocks<T> exact_means(const std::vector<T>& x, std::size_t b, const gc::two_level_vector<T>& p,
                            long double rel) {
  exact_blocks<T> r;
  std::size_t k = 0;
  for (std::size_t begin = 0; begin < x.size(); begin += std::min(b, x.size() - begin), ++k) {
    const std::size_t end = begin + std::min(b, x.size() - begin);
    for (const bool negatives : {true, false}) {
      long double sum = 0;
      long double n = 0;
      for (std::size_t i = begin; i < end; ++i)
        if ((x[i] < T(0)) == negatives) {
          sum += static_cast<long double>(x[i]);
          n += 1;
        }
      if (n == 0) continue;
      const long double mean = sum / n;
      const long double sent = negatives ? p.lows[k] : p.highs[k];
      r.kept += sum * sum / n;
      r.rounding += n * (sent - mean) * (sent - mean);
      r.close = r.close && std::fabs(sent - mean) <= rel * std::fabs(mean) + ulp_of(static_cast<T>(sent));
    }
  }
  return r;
}

}  // namespace

// =======================================================================================
// Compile-time facts.

static_assert(std::is_same_v<gc::payload_t<gc::onebit, float>, gc::two_level_vector<float>>);
static_assert(std::is_same_v<gc::payload_t<gc::onebit, double>, gc::two_level_vector<double>>);
static_assert(gc::payload<gc::two_level_vector<float>>);
static_assert(gc::payload<gc::two_level_vector<double>>);
static_assert(gc::contractive_compressor<gc::onebit, float>);
static_assert(gc::contractive_compressor<gc::onebit, double>);
static_assert(!gc::absolute_compressor<gc::onebit, float>);
static_assert(!gc::unbiased_compressor<gc::onebit, double>);
static_assert(!gc::seeded_compressor<gc::onebit>);
static_assert(!gc::compressor<gc::onebit, int>);
static_assert(gc::aggregation_of_v<gc::onebit> == gc::aggregation_class::gather);
static_assert(gc::onebit::name == "onebit");
static_assert(gc::onebit{}.block_size == gc::onebit::whole);

// =======================================================================================
// Hand-computed payloads.

TEST_CASE_TEMPLATE("onebit: hand-computed payloads with mixed signs", T, float, double) {
  // x = (1, -2, 3, -4, 5, -6, 8). One block: negatives -2, -4, -6 (mean magnitude 4), the
  // others 1, 3, 5, 8 (mean 17/4).
  const std::vector<T> x{T(1), T(-2), T(3), T(-4), T(5), T(-6), T(8)};
  gc::two_level_vector<T> p;
  gc::compress(gc::exec::seq, gc::onebit{}, x, p);
  CHECK(p.dim == 7);
  CHECK(p.block_size == gc::onebit::whole);
  REQUIRE(p.blocks() == 1);
  REQUIRE(p.lows.size() == 1);
  REQUIRE(p.highs.size() == 1);
  CHECK(p.lows[0] == T(-4));
  CHECK(p.highs[0] == T(4.25));
  REQUIRE(p.negative.size() == 1);
  CHECK(p.negative[0] == 0b0101010u);
  CHECK(p.sent_elements() == 7);
  CHECK(gt::densify<T>(p, 7) == std::vector<T>{T(4.25), T(-4), T(4.25), T(-4), T(4.25), T(-4), T(4.25)});

  // Blocks of 3 (the last one short): {1, -2, 3} {-4, 5, -6} {8}.
  gc::compress(gc::exec::seq, gc::onebit{.block_size = 3}, x, p);
  CHECK(p.block_size == 3);
  REQUIRE(p.blocks() == 3);
  CHECK(p.lows == std::vector<T>{T(-2), T(-5), T(0)});
  CHECK(p.highs == std::vector<T>{T(2), T(5), T(8)});
  CHECK(bits(p.lows[2]) == bits(T(0)));  // an empty group sends +0, not -0
  CHECK(p.negative[0] == 0b0101010u);
  CHECK(gt::densify<T>(p, 7) == std::vector<T>{T(2), T(-2), T(2), T(-5), T(5), T(-5), T(8)});

  // Blocks of 2: {1, -2} {3, -4} {5, -6} {8}: every group of one element decodes to itself.
  gc::compress(gc::exec::seq, gc::onebit{.block_size = 2}, x, p);
  CHECK(gt::densify<T>(p, 7) == x);
  gc::compress(gc::exec::seq, gc::onebit{.block_size = 1}, x, p);
  CHECK(gt::densify<T>(p, 7) == x);
}

TEST_CASE_TEMPLATE("onebit: a group with no element sends +0", T, float, double) {
  gc::two_level_vector<T> p;
  const std::vector<T> negative{T(-1), T(-2), T(-6)};
  gc::compress(gc::exec::seq, gc::onebit{}, negative, p);
  CHECK(p.lows == std::vector<T>{T(-3)});
  CHECK(bits(p.highs[0]) == bits(T(0)));
  CHECK(p.negative[0] == 0b111u);
  CHECK(gt::densify<T>(p, 3) == std::vector<T>{T(-3), T(-3), T(-3)});

  const std::vector<T> nonnegative{T(2), T(0), T(7)};
  gc::compress(gc::exec::seq, gc::onebit{}, nonnegative, p);
  CHECK(bits(p.lows[0]) == bits(T(0)));
  CHECK(p.highs == std::vector<T>{T(3)});
  CHECK(p.negative[0] == 0u);

  // All zeros of both signs: both groups' means are +0 (-0 is non-negative), no bit set.
  const std::vector<T> zeros{T(0), -T(0), -T(0)};
  gc::compress(gc::exec::seq, gc::onebit{}, zeros, p);
  CHECK(bits(p.lows[0]) == bits(T(0)));
  CHECK(bits(p.highs[0]) == bits(T(0)));
  CHECK(p.negative[0] == 0u);
  CHECK(gt::same_bits(gt::densify<T>(p, 3), std::vector<T>{T(0), T(0), T(0)}));
}

TEST_CASE_TEMPLATE("onebit: zeros, -0, NaN and infinities", T, float, double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T neg_nan = std::copysign(nan, T(-1));
  REQUIRE(std::signbit(neg_nan));
  // Blocks of 4: {+0, -0, 1, -3} {NaN, -NaN, 2, -2} {Inf, 1, -1, 0} {-Inf, 5}.
  const std::vector<T> x{T(0), -T(0), T(1), T(-3), nan, neg_nan, T(2), T(-2), inf, T(1), T(-1), T(0), -inf, T(5)};
  gc::two_level_vector<T> p;
  gc::compress(gc::exec::seq, gc::onebit{.block_size = 4}, x, p);
  REQUIRE(p.blocks() == 4);
  // -0 counts as non-negative: the others are {+0, -0, 1}, mean 1/3.
  CHECK(p.lows[0] == T(-3));
  CHECK(p.highs[0] == static_cast<T>(1.0 / 3.0));
  // NaN of either sign counts as non-negative and makes that group's mean NaN, not the other's.
  CHECK(p.lows[1] == T(-2));
  CHECK(std::isnan(p.highs[1]));
  CHECK(p.lows[2] == T(-1));
  CHECK(p.highs[2] == inf);
  CHECK(p.lows[3] == -inf);
  CHECK(p.highs[3] == T(5));
  // Bit set iff x_i < 0.
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(i);
    CHECK(p.is_negative(i) == (x[i] < T(0)));
  }
  CHECK(!p.is_negative(1));
  CHECK(!p.is_negative(5));
  CHECK(p.is_negative(12));
  const auto dec = gt::densify<T>(p, x.size());
  CHECK(dec[1] == static_cast<T>(1.0 / 3.0));
  CHECK(dec[3] == T(-3));
  CHECK(std::isnan(dec[4]));
  CHECK(std::isnan(dec[5]));
  CHECK(std::isnan(dec[6]));
  CHECK(dec[7] == T(-2));
  CHECK(dec[11] == inf);
  CHECK(dec[12] == -inf);
  CHECK(dec[13] == T(5));
  const auto ref = ref_onebit(x, 4);
  CHECK(gt::same_result(p.lows, ref.lows));
  CHECK(gt::same_result(p.highs, ref.highs));
  CHECK(p.negative == ref.negative);
}

TEST_CASE_TEMPLATE("onebit: empty input, and stale output replaced", T, float, double) {
  const std::vector<T> x;
  gc::two_level_vector<T> p;
  p.reset(100, 7);  // stale state
  gc::compress(gc::exec::seq, gc::onebit{}, x, p);
  CHECK(p.dim == 0);
  CHECK(p.blocks() == 0);
  CHECK(p.lows.empty());
  CHECK(p.highs.empty());
  CHECK(p.negative.empty());
  CHECK(p.sent_elements() == 0);
  CHECK(gc::wire_bytes(p) == 24u);
  p.reset(100, 7);
  gc::compress(gc::exec::seq, gc::onebit{.block_size = 3}, x, p);
  CHECK(p.dim == 0);
  CHECK(p.block_size == 3);
  CHECK(p.lows.empty());
  CHECK(p.negative.empty());
}

// =======================================================================================
// The documented computation, the bound, and the comparison with blockwise_sign.

TEST_CASE_TEMPLATE("onebit: the documented computation bit for bit, the bound and never worse than blockwise_sign", T,
                   float, double) {
  gc::two_level_vector<T> reused;  // one payload reused across every case: no stale state may leak
  int blocks_checked = 0, strictly_better = 0;
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : gt::edge_sizes) {
      const std::size_t block_sizes[] = {1,    2,    3,    63,   64, 65, 256, std::max<std::size_t>(d, 1),
                                         4096, 4097, d + 1, gc::onebit::whole};
      for (const std::size_t b : block_sizes) {
        if (b < 64 && d > 1000 && kind != gt::input_kind::normal) continue;  // many tiny blocks: slow, nothing new
        const std::uint64_t seed = 31 + d + b % 1000;
        const std::string kind_name = gt::to_string(kind);
        CAPTURE(kind_name);
        CAPTURE(d);
        CAPTURE(b);
        const auto x = gt::make_input<T>(kind, d, seed);
        const gc::onebit c{.block_size = b};
        gc::two_level_vector<T> fresh;
        gc::compress(gc::exec::seq, c, x, fresh);
        gc::compress(gc::exec::seq, c, std::span<const T>(x), reused);
        CHECK(fresh == reused);
        const std::size_t widest = std::min(b, d);
        CHECK(c.delta(d) == (widest == 0 ? 1.0 : 1.0 / static_cast<double>(widest)));

        // Exactly the documented computation (every input here is finite: == is bitwise up to -0,
        // which the fields compare by bits below).
        const auto ref = ref_onebit(x, b);
        REQUIRE(fresh.dim == ref.dim);
        CHECK(fresh.block_size == b);
        CHECK(gt::same_bits(fresh.lows, ref.lows));
        CHECK(gt::same_bits(fresh.highs, ref.highs));
        CHECK(fresh.negative == ref.negative);
        if (d == 0) continue;

        // Close to the exact means: the double sums are off by far less than a float ulp.
        const auto exact = exact_means(x, b, fresh, std::is_same_v<T, float> ? 1e-9L : 1e-12L);
        CHECK(exact.close);
        for (const T v : fresh.lows) CHECK(v <= T(0));
        for (const T v : fresh.highs) CHECK(v >= T(0));

        // The error is what the projection drops, plus the rounding of the means:
        // ||x - C(x)||^2 = ||x||^2 - sum S_g^2 / n_g + sum n_g delta_g^2.
        const auto dec = gt::densify<T>(fresh, d);
        const long double err = gt::squared_distance<T>(x, dec);
        const long double norm2 = gt::squared_norm_ld<T>(x);
        const long double tol = 1e-12L * norm2;
        CAPTURE(static_cast<double>(err));
        CAPTURE(static_cast<double>(norm2));
        CHECK(std::fabs(err - (norm2 - exact.kept + exact.rounding)) <= tol + 1e-3L * exact.rounding);
        // The bound: (1 - 1/min(B, d)) ||x||^2, up to that rounding.
        CHECK(err <= (1 - 1.0L / static_cast<long double>(widest)) * norm2 + exact.rounding + tol);

        // Never worse than blockwise_sign on the same blocks (whose own rounding only adds).
        gc::sign_vector<T> s;
        gc::compress(gc::exec::seq, gc::blockwise_sign{.block_size = b}, x, s);
        const long double sign_err = gt::squared_distance<T>(x, gt::densify<T>(s, d));
        CHECK(err <= sign_err + exact.rounding + tol);
        ++blocks_checked;
        if (err + tol < sign_err) ++strictly_better;
      }
    }
  }
  CHECK(blocks_checked > 1000);
  CHECK(strictly_better > 100);  // the comparison can tell them apart
}

TEST_CASE_TEMPLATE("onebit: one block of the whole vector is block_size d or beyond", T, float, double) {
  for (const std::size_t d : {1u, 5u, 64u, 100u, 4097u, 10007u}) {
    CAPTURE(d);
    const auto x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 37);
    gc::two_level_vector<T> whole, exact, beyond;
    gc::compress(gc::exec::seq, gc::onebit{}, x, whole);
    gc::compress(gc::exec::seq, gc::onebit{.block_size = d}, x, exact);
    gc::compress(gc::exec::seq, gc::onebit{.block_size = 3 * d}, x, beyond);
    CHECK(whole.lows == exact.lows);
    CHECK(whole.highs == exact.highs);
    CHECK(whole.negative == exact.negative);
    CHECK(beyond.lows == exact.lows);
    CHECK(beyond.highs == exact.highs);
    CHECK(gc::onebit{}.delta(d) == 1.0 / static_cast<double>(d));
    // Never worse than scaled_sign (one scale for the whole vector), up to the means' rounding.
    gc::sign_vector<T> s;
    gc::compress(gc::exec::seq, gc::scaled_sign{}, x, s);
    const long double onebit_err = gt::squared_distance<T>(x, gt::densify<T>(whole, d));
    const long double sign_err = gt::squared_distance<T>(x, gt::densify<T>(s, d));
    const long double rounding = exact_means(x, gc::onebit::whole, whole, 1e-9L).rounding;
    CHECK(onebit_err <= sign_err + rounding + 1e-12L * gt::squared_norm_ld<T>(x));
    if (d > 1) CHECK(onebit_err < sign_err);  // heavy-tailed values: the two means differ
  }
  CHECK(gc::onebit{}.delta(0) == 1.0);
  CHECK(gc::onebit{.block_size = 8}.delta(1000) == 1.0 / 8);
}

// =======================================================================================
// Double overflow, and errors.

TEST_CASE("onebit: double groups near the overflow threshold still get finite means") {
  // Each group's mean is at most its largest |x_i|, so it fits; the double sums of |x_i| of
  // both groups overflow here, so the means are formed by the rescue (sum on |x_i| 2^-e).
  const double big = std::numeric_limits<double>::max() / 2 * 1.5;  // 0.75 * DBL_MAX
  const std::vector<double> x{big, -big, big / 2, big, -big / 4, -big, 1.0, -0.0};
  gc::two_level_vector<double> p;
  gc::compress(gc::exec::seq, gc::onebit{}, x, p);
  REQUIRE(p.lows.size() == 1);
  CHECK(std::isfinite(p.lows[0]));
  CHECK(std::isfinite(p.highs[0]));
  const long double b = static_cast<long double>(big);
  const long double low = -(2.25L * b) / 3, high = (2.5L * b + 1) / 5;  // -0 is non-negative
  CHECK(std::fabs(p.lows[0] - low) <= std::fabs(low) * 1e-15L);
  CHECK(std::fabs(p.highs[0] - high) <= high * 1e-15L);
  const auto ref = ref_onebit(x, gc::onebit::whole);
  CHECK(bits(p.lows[0]) == bits(ref.lows[0]));
  CHECK(bits(p.highs[0]) == bits(ref.highs[0]));
  const auto dec = gt::densify<double>(p, x.size());
  CHECK(gt::squared_distance<double>(x, dec) <= (1 - 1.0L / 8) * gt::squared_norm_ld<double>(x));

  // Only one group overflowing; and an infinity in the input, which no rescue hides.
  const std::vector<double> one{big, big, big, -1.0, -3.0};
  gc::compress(gc::exec::seq, gc::onebit{}, one, p);
  CHECK(p.lows[0] == -2.0);
  CHECK(std::fabs(p.highs[0] - b) <= b * 1e-15L);
  const std::vector<double> with_inf{big, big, std::numeric_limits<double>::infinity(), -1.0};
  gc::compress(gc::exec::seq, gc::onebit{}, with_inf, p);
  CHECK(p.lows[0] == -1.0);
  CHECK(p.highs[0] == std::numeric_limits<double>::infinity());
}

TEST_CASE_TEMPLATE("onebit: block_size 0 is rejected and leaves the payload unchanged", T, float, double) {
  const auto x = gt::make_input<T>(gt::input_kind::normal, 10, 41);
  gc::two_level_vector<T> p;
  gc::compress(gc::exec::seq, gc::onebit{.block_size = 3}, x, p);
  const auto before = p;
  const std::string msg = error_message([&] { gc::compress(gc::exec::seq, gc::onebit{.block_size = 0}, x, p); });
  CHECK(contains(msg, "gradcomp::onebit"));
  CHECK(contains(msg, "block_size must be >= 1"));
  CHECK(p == before);
  CHECK(std::isfinite(gc::onebit{.block_size = 0}.delta(10)));  // no division by zero
  CHECK_THROWS_WITH_AS(p.reset(10, 0), doctest::Contains("block_size must be >= 1"), gc::error);
}

TEST_CASE_TEMPLATE("onebit: error feedback runs and keeps e = p - decode(m)", T, float, double) {
  const std::size_t d = 1000;
  gc::error_feedback<gc::onebit, T> ef(gc::onebit{.block_size = 64}, d);
  for (int step = 0; step < 3; ++step) {
    const auto g = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 50 + static_cast<std::uint64_t>(step));
    const std::vector<T> e_before(ef.error().begin(), ef.error().end());
    const auto& m = ef.compress(gc::exec::seq, std::span<const T>(g));
    std::vector<T> p(d);
    for (std::size_t i = 0; i < d; ++i) p[i] = e_before[i] + g[i];
    std::vector<T> expected = p;
    m.decompress_add(std::span<T>(expected), T(-1));
    CHECK(gt::same_bits(std::vector<T>(ef.error().begin(), ef.error().end()), expected));
  }
  CHECK(ef.metrics().steps == 3);
  CHECK(ef.metrics().elements_sent == 3 * d);
}
