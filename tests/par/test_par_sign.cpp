// scaled_sign, blockwise_sign and onebit on exec::par: bit-identical to exec::seq.
#include "par_compare.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

using namespace gradcomp_par_test;

namespace {

/// Leaves out holding stale contents that the compressor must replace entirely: all signs
/// negative and wrong scales at the right sizes, or larger, or nothing.
template <class T>
void make_stale(gc::sign_vector<T>& out, std::size_t d, std::size_t b, std::size_t how) {
  const std::size_t blocks = gc::sign_vector<T>::block_count(d, b);
  const std::size_t words = d / 64 + (d % 64 != 0);
  out.dim = d + 3;
  out.block_size = 5;
  if (how == 0) {
    out.scales.assign(blocks, T(123));
    out.negative.assign(words, ~std::uint64_t{0});
  } else if (how == 1) {
    out.scales.assign(blocks + 9, T(-7));
    out.negative.assign(words + 2, 0x5555555555555555ULL);
  } else {
    out.scales.clear();
    out.negative.clear();
  }
}

/// c on seq, and on every policy under every thread count (from stale output).
template <class T, class C>
void check_sign(const std::vector<T>& x, const C& c) {
  gc::sign_vector<T> ref, got;
  gc::compress(gc::exec::seq, c, x, ref);
  for_each_thread_count([&] {
    for (std::size_t p = 0; p < policies().size(); ++p) {
      CAPTURE(policy_name(policies()[p]));
      make_stale(got, x.size(), ref.block_size, p);
      gc::compress(policies()[p], c, x, got);
      check_same_payload(ref, got);
    }
  });
}

/// Block sizes: one element, odd, a word, a reduction block and just over it, longer than a
/// parallel chunk, the whole vector, beyond it, and beyond any vector.
std::vector<std::size_t> block_sizes(std::size_t d) {
  std::vector<std::size_t> b{1, 7, 64, 256, 4096, 4097, 5000, 70000, d + 1, SIZE_MAX};
  if (d > 0) b.push_back(d);
  return b;
}

}  // namespace

TEST_CASE_TEMPLATE("par sign compressors: bit-identical to seq on every input kind, size and block size", T, float,
                   double) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::normal) continue;  // one kind spans 16 chunks
      std::vector<T> x = gt::make_input<T>(kind, d, d + 3);
      if (d % 3 == 0) place_specials(x, d, 1 + d / 1000);
      check_sign(x, gc::scaled_sign{});
      for (const std::size_t b : block_sizes(d)) {
        // One-element blocks on the largest inputs cost seconds and add nothing new.
        if (b < 64 && d > 70000 && kind != gt::input_kind::normal) continue;
        CAPTURE(b);
        check_sign(x, gc::blockwise_sign{.block_size = b});
      }
    }
  }
}

TEST_CASE_TEMPLATE("par sign compressors: bit i is set iff x_i < 0 (-0 and NaN of either sign are +)", T, float,
                   double) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T tiny = std::numeric_limits<T>::denorm_min();
  const T pattern[] = {-T(0), T(0), -nan, nan, -inf, inf, -tiny, tiny, T(-1), T(1), T(-3.5)};
  const bool negative[] = {false, false, false, false, true, false, true, false, true, false, true};
  for_each_thread_count([&] {
    for (const std::size_t d : {std::size_t{11}, std::size_t{64}, std::size_t{1000}, std::size_t{65536 * 2 + 13}}) {
      CAPTURE(d);
      std::vector<T> x(d);
      for (std::size_t i = 0; i < d; ++i) x[i] = pattern[(i * 7) % std::size(pattern)];
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        for (const std::size_t b : {std::size_t{1}, std::size_t{16}, std::size_t{5000}}) {
          gc::sign_vector<T> got;
          gc::compress(policy, gc::blockwise_sign{.block_size = b}, x, got);
          REQUIRE(got.dim == d);
          bool all_match = true;
          for (std::size_t i = 0; i < d; ++i) all_match &= got.is_negative(i) == negative[(i * 7) % std::size(pattern)];
          CHECK(all_match);
          // Padding bits of the last word stay zero.
          if (d % 64 != 0) CHECK((got.negative.back() >> (d % 64)) == 0);
        }
        // A block of NaN-free, Inf-free entries has a finite scale; one with NaN has a NaN one.
        gc::sign_vector<T> one;
        gc::compress(policy, gc::blockwise_sign{.block_size = 1}, x, one);
        for (std::size_t i = 0; i < std::min<std::size_t>(d, 64); ++i) {
          CAPTURE(i);
          const T expected = static_cast<T>(std::fabs(static_cast<double>(x[i])));
          CHECK(gt::same_result(one.scales[i], expected));
        }
      }
    }
  });
}

TEST_CASE_TEMPLATE("par sign compressors: infinite sums (Inf input, double overflow rescue) match seq", T, float,
                   double) {
  for (const std::size_t d : {std::size_t{5000}, std::size_t{70001}, std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, d, 17);
    std::vector<T> with_inf = x;
    with_inf[d / 2] = -std::numeric_limits<T>::infinity();
    check_sign(with_inf, gc::scaled_sign{});
    for (const std::size_t b : {std::size_t{64}, std::size_t{4096}, std::size_t{5000}, d})
      check_sign(with_inf, gc::blockwise_sign{.block_size = b});
    if constexpr (sizeof(T) == 8) {
      // Sums of |x| ~ 1e308 overflow double although every mean fits: the rescue path.
      std::vector<T> huge(d);
      for (std::size_t i = 0; i < d; ++i) huge[i] = (i % 3 == 0 ? -1.0 : 1.0) * (1.5e308 - 1e306 * static_cast<double>(i % 7));
      gc::sign_vector<T> ref;
      gc::compress(gc::exec::seq, gc::scaled_sign{}, huge, ref);
      REQUIRE(std::isfinite(ref.scales[0]));  // the rescue ran, and is what par must match
      check_sign(huge, gc::scaled_sign{});
      for (const std::size_t b : {std::size_t{64}, std::size_t{4096}, std::size_t{5000}, d})
        check_sign(huge, gc::blockwise_sign{.block_size = b});
    }
  }
}

TEST_CASE_TEMPLATE("par blockwise_sign: block_size 0 throws the seq error and leaves out unchanged", T, GRADCOMP_PAR_FLOATS) {
  const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, 300000, 5);
  gc::sign_vector<T> before, par_out;
  gc::compress(gc::exec::seq, gc::blockwise_sign{.block_size = 7}, x, before);
  for (const auto& policy : policies())
    check_same_rejection(policy, gc::blockwise_sign{.block_size = 0}, std::span<const T>(x), before);
  CHECK_THROWS_WITH_AS(gc::compress(gc::exec::par, gc::blockwise_sign{.block_size = 0}, x, par_out),
                       doctest::Contains("block_size must be >= 1"), gc::error);
}

TEST_CASE_TEMPLATE("par error_feedback<scaled_sign / blockwise_sign>: bit-identical to seq over several steps", T,
                   GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const std::size_t d : feedback_sizes()) {
      for (const auto& policy : policies()) {
        CAPTURE(d);
        CAPTURE(policy_name(policy));
        check_feedback_steps<T>(gc::scaled_sign{}, d, policy);
        for (const std::size_t b : {std::size_t{7}, std::size_t{64}, std::size_t{4096}, std::size_t{5000}}) {
          CAPTURE(b);
          check_feedback_steps<T>(gc::blockwise_sign{.block_size = b}, d, policy);
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// onebit: the sign bits and, per block, the two group means (three masked sums per block).

namespace {

/// Stale two-level output the compressor must replace entirely (as make_stale above).
template <class T>
void make_stale(gc::two_level_vector<T>& out, std::size_t d, std::size_t b, std::size_t how) {
  const std::size_t blocks = gc::two_level_vector<T>::block_count(d, b);
  const std::size_t words = d / 64 + (d % 64 != 0);
  out.dim = d + 3;
  out.block_size = 5;
  if (how == 0) {
    out.lows.assign(blocks, T(123));
    out.highs.assign(blocks, T(-9));
    out.negative.assign(words, ~std::uint64_t{0});
  } else if (how == 1) {
    out.lows.assign(blocks + 9, T(-7));
    out.highs.assign(blocks + 2, T(7));
    out.negative.assign(words + 2, 0x5555555555555555ULL);
  } else {
    out.lows.clear();
    out.highs.clear();
    out.negative.clear();
  }
}

/// onebit on seq, and on every policy under every thread count (from stale output).
template <class T>
void check_onebit(const std::vector<T>& x, const gc::onebit& c) {
  gc::two_level_vector<T> ref, got;
  gc::compress(gc::exec::seq, c, x, ref);
  for_each_thread_count([&] {
    for (std::size_t p = 0; p < policies().size(); ++p) {
      CAPTURE(policy_name(policies()[p]));
      make_stale(got, x.size(), ref.block_size, p);
      gc::compress(policies()[p], c, x, got);
      check_same_payload(ref, got);
    }
  });
}

/// block_sizes(d) and onebit's default, one block of the whole vector.
std::vector<std::size_t> onebit_block_sizes(std::size_t d) {
  std::vector<std::size_t> b = block_sizes(d);
  b.push_back(gc::onebit::whole);
  return b;
}

}  // namespace

TEST_CASE_TEMPLATE("par onebit: bit-identical to seq on every input kind, size and block size", T, GRADCOMP_PAR_FLOATS) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      // Every kind up to 65537 elements (two chunks); above, two kinds (one past 2^20: 16 chunks).
      if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::normal) continue;
      if (d > 70000 && kind != gt::input_kind::normal && kind != gt::input_kind::with_zeros) continue;
      std::vector<T> x = gt::make_input<T>(kind, d, d + 7);
      if (d % 3 == 0) place_specials(x, d, 1 + d / 1000);
      for (const std::size_t b : onebit_block_sizes(d)) {
        // Blocks of fewer than 64 elements past two reduction blocks cost seconds and add
        // nothing new (blockwise_sign's sweep runs them on every size).
        if (b < 64 && d > 8192 && kind != gt::input_kind::normal) continue;
        CAPTURE(b);
        check_onebit(x, gc::onebit{.block_size = b});
      }
    }
  }
}

TEST_CASE_TEMPLATE("par onebit: groups by x_i < 0 (-0 and NaN of either sign non-negative), empty groups send +0", T,
                   GRADCOMP_PAR_FLOATS) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T tiny = std::numeric_limits<T>::denorm_min();
  const T pattern[] = {-T(0), T(0), -nan, nan, -inf, inf, -tiny, tiny, T(-1), T(1), T(-3.5)};
  const bool negative[] = {false, false, false, false, true, false, true, false, true, false, true};
  for_each_thread_count([&] {
    for (const std::size_t d : {std::size_t{11}, std::size_t{64}, std::size_t{1000}, std::size_t{65536 * 2 + 13}}) {
      CAPTURE(d);
      std::vector<T> x(d);
      for (std::size_t i = 0; i < d; ++i) x[i] = pattern[(i * 7) % std::size(pattern)];
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        for (const std::size_t b : {std::size_t{1}, std::size_t{16}, std::size_t{5000}, gc::onebit::whole}) {
          gc::two_level_vector<T> got;
          gc::compress(policy, gc::onebit{.block_size = b}, x, got);
          REQUIRE(got.dim == d);
          bool all_match = true;
          for (std::size_t i = 0; i < d; ++i) all_match &= got.is_negative(i) == negative[(i * 7) % std::size(pattern)];
          CHECK(all_match);
          if (d % 64 != 0) CHECK((got.negative.back() >> (d % 64)) == 0);  // padding bits stay zero
        }
        // Blocks of one element: the element itself in its group, +0 in the other.
        gc::two_level_vector<T> one;
        gc::compress(policy, gc::onebit{.block_size = 1}, x, one);
        for (std::size_t i = 0; i < std::min<std::size_t>(d, 64); ++i) {
          CAPTURE(i);
          const T magnitude = static_cast<T>(std::fabs(static_cast<double>(x[i])));
          const bool neg = x[i] < T(0);
          CHECK(gt::same_result(one.lows[i], neg ? -magnitude : T(0)));
          CHECK(gt::same_result(one.highs[i], neg ? T(0) : magnitude));
          CHECK(gt::bits(neg ? one.highs[i] : one.lows[i]) == gt::bits(T(0)));
        }
      }
    }
  });
  // Every element of one sign: the other group's mean is +0 on every policy.
  for (const std::size_t d : {std::size_t{5000}, std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    std::vector<T> pos = gt::make_input<T>(gt::input_kind::normal, d, 3), neg(d);
    for (std::size_t i = 0; i < d; ++i) {
      pos[i] = std::fabs(pos[i]);
      neg[i] = -pos[i] - T(1);
    }
    pos[d / 3] = -T(0);
    for (const std::size_t b : {std::size_t{64}, std::size_t{5000}, gc::onebit::whole}) {
      check_onebit(pos, gc::onebit{.block_size = b});
      check_onebit(neg, gc::onebit{.block_size = b});
    }
  }
}

TEST_CASE_TEMPLATE("par onebit: infinite sums (Inf input, double overflow rescue of either group) match seq", T, float,
                   double) {
  for (const std::size_t d : {std::size_t{5000}, std::size_t{70001}, std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, d, 19);
    std::vector<T> with_inf = x;
    with_inf[d / 2] = -std::numeric_limits<T>::infinity();
    with_inf[d / 3] = std::numeric_limits<T>::infinity();
    for (const std::size_t b : {std::size_t{64}, std::size_t{4096}, std::size_t{5000}, d, gc::onebit::whole})
      check_onebit(with_inf, gc::onebit{.block_size = b});
    if constexpr (sizeof(T) == 8) {
      // Sums of |x| ~ 1e308 overflow double although every mean fits: the rescue path, in both
      // groups, and in one group only (the negatives small).
      std::vector<T> huge(d), one_group(d);
      for (std::size_t i = 0; i < d; ++i) {
        const double m = 1.5e308 - 1e306 * static_cast<double>(i % 7);
        huge[i] = (i % 3 == 0 ? -1.0 : 1.0) * m;
        one_group[i] = i % 3 == 0 ? -1.0 - static_cast<double>(i % 5) : m;
      }
      for (const auto* v : {&huge, &one_group}) {
        gc::two_level_vector<T> ref;
        gc::compress(gc::exec::seq, gc::onebit{}, *v, ref);
        REQUIRE(std::isfinite(ref.lows[0]));  // the rescue ran, and is what par must match
        REQUIRE(std::isfinite(ref.highs[0]));
        for (const std::size_t b : {std::size_t{64}, std::size_t{4096}, std::size_t{5000}, d, gc::onebit::whole})
          check_onebit(*v, gc::onebit{.block_size = b});
      }
    }
  }
}

TEST_CASE_TEMPLATE("par onebit: block_size 0 throws the seq error and leaves out unchanged", T, GRADCOMP_PAR_FLOATS) {
  const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, 300000, 5);
  gc::two_level_vector<T> before, par_out;
  gc::compress(gc::exec::seq, gc::onebit{.block_size = 7}, x, before);
  for (const auto& policy : policies())
    check_same_rejection(policy, gc::onebit{.block_size = 0}, std::span<const T>(x), before);
  CHECK_THROWS_WITH_AS(gc::compress(gc::exec::par, gc::onebit{.block_size = 0}, x, par_out),
                       doctest::Contains("block_size must be >= 1"), gc::error);
}

TEST_CASE_TEMPLATE("par error_feedback<onebit>: bit-identical to seq over several steps", T, GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const std::size_t d : feedback_sizes()) {
      for (const auto& policy : policies()) {
        CAPTURE(d);
        CAPTURE(policy_name(policy));
        for (const std::size_t b : {std::size_t{7}, std::size_t{4096}, std::size_t{5000}, gc::onebit::whole}) {
          CAPTURE(b);
          check_feedback_steps<T>(gc::onebit{.block_size = b}, d, policy);
        }
      }
    }
  });
}
