// scaled_sign and blockwise_sign on exec::par: bit-identical to exec::seq.
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

TEST_CASE_TEMPLATE("par blockwise_sign: block_size 0 throws the seq error and leaves out unchanged", T, float, double) {
  const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, 300000, 5);
  gc::sign_vector<T> before, par_out;
  gc::compress(gc::exec::seq, gc::blockwise_sign{.block_size = 7}, x, before);
  for (const auto& policy : policies())
    check_same_rejection(policy, gc::blockwise_sign{.block_size = 0}, std::span<const T>(x), before);
  CHECK_THROWS_WITH_AS(gc::compress(gc::exec::par, gc::blockwise_sign{.block_size = 0}, x, par_out),
                       doctest::Contains("block_size must be >= 1"), gc::error);
}

TEST_CASE_TEMPLATE("par error_feedback<scaled_sign / blockwise_sign>: bit-identical to seq over several steps", T,
                   float, double) {
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
