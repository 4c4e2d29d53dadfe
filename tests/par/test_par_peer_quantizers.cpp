// terngrad, dithering, sign, momentum<C>, ef21<C> and budget_threshold on exec::par: bit-identical to
// exec::seq for the same seed and step, the same step advance, and the same errors.
#include "par_compare.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

using namespace gradcomp_par_test;

namespace {

template <class T>
gc::quantized_vector<T> stale_levels(std::size_t d) {
  gc::quantized_vector<T> q;
  q.dim = 3;
  q.scale = T(9);
  q.level_bits = 17;
  q.levels.assign(d + 2, 12345);
  return q;
}

/// A stale payload with the other coding, which the compressor must overwrite too.
template <class T>
gc::quantized_vector<T> stale_natural(std::size_t d) {
  gc::quantized_vector<T> q = stale_levels<T>(d);
  q.coding = gc::level_coding::power_of_two;
  return q;
}

template <class T>
gc::sign_vector<T> stale_signs(std::size_t d) {
  gc::sign_vector<T> s;
  s.reset(d + 70, 3);
  s.negative.assign(s.negative.size(), ~std::uint64_t{0});
  return s;
}

}  // namespace

TEST_CASE_TEMPLATE("par terngrad and sign: bit-identical to seq on every input kind and size", T, GRADCOMP_PAR_FLOATS) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::heavy_tailed) continue;  // one kind spans 16 chunks
      std::vector<T> x = gt::make_input<T>(kind, d, d + 3);
      check_twice_as_seq(x, gc::terngrad{.seed = 5 + d, .step = 2}, stale_levels<T>(d));
      check_twice_as_seq(x, gc::sign{}, stale_signs<T>(d));
      check_twice_as_seq(x, gc::sign{.scale = 0.003}, stale_signs<T>(d));  // Signum's step size
      place_specials(x, d + 1, 1 + d / 4000);  // sign takes NaN and Inf (NaN as +1)
      check_twice_as_seq(x, gc::sign{}, stale_signs<T>(d));
    }
  }
}

TEST_CASE_TEMPLATE("par terngrad: zeros, denormals, the largest values, and errors match seq", T, GRADCOMP_PAR_FLOATS) {
  const T big = std::numeric_limits<T>::max(), tiny = std::numeric_limits<T>::denorm_min();
  for (const std::size_t d : {std::size_t{1}, std::size_t{33}, std::size_t{70001}}) {
    CAPTURE(d);
    std::vector<T> x(d, T(0));
    check_twice_as_seq(x, gc::terngrad{}, stale_levels<T>(d));  // scale 0: every level 0
    for (std::size_t i = 0; i < d; i += 3) x[i] = (i % 2 ? -tiny : tiny);
    check_twice_as_seq(x, gc::terngrad{.seed = 1}, stale_levels<T>(d));
    for (std::size_t i = 0; i < d; ++i) x[i] = (i % 5 ? big : -big) / T(i % 7 + 1);
    check_twice_as_seq(x, gc::terngrad{.seed = 2}, stale_levels<T>(d));
  }
  const T specials[] = {std::numeric_limits<T>::quiet_NaN(), -std::numeric_limits<T>::infinity()};
  for_each_thread_count([&] {
    for (const std::size_t d : {std::size_t{5}, std::size_t{3 * 65536 + 4099}}) {
      const std::vector<T> good = gt::make_input<T>(gt::input_kind::normal, d, 1);
      gc::quantized_vector<T> before;
      gc::terngrad warm{.seed = 3};
      gc::compress(gc::exec::seq, warm, good, before);
      for (const auto& policy : policies()) {
        for (const T bad : specials) {
          std::vector<T> x = good;
          x[d - 2] = bad;
          x[d / 2] = bad;  // the first one is named
          check_same_rejection(policy, gc::terngrad{.seed = 3, .step = 7}, std::span<const T>(x), before);
        }
      }
    }
  });
}

TEST_CASE_TEMPLATE("par dithering: both partitions and norms bit-identical to seq", T, GRADCOMP_PAR_FLOATS) {
  using part = gc::dithering::partition_kind;
  using norm = gc::dithering::norm_kind;
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      // Every kind up to 65537 elements (two chunks); above, one kind (past 2^20: 16 chunks).
      if (d > 70000 && kind != gt::input_kind::normal) continue;
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 5);
      for (const part p : {part::linear, part::natural})
        for (const norm n : {norm::max, norm::l2}) {
          // The linear levels are qsgd's SIMD kernel (swept in test_par_quantizers): two kinds here.
          if (p == part::linear && kind != gt::input_kind::normal && kind != gt::input_kind::ties) continue;
          CAPTURE(static_cast<int>(p));
          CAPTURE(static_cast<int>(n));
          const gc::dithering c{.s = p == part::linear ? 5u : 4u, .partition = p, .norm = n, .seed = 7 + d, .step = 1};
          check_twice_as_seq(x, c, p == part::linear ? stale_natural<T>(d) : stale_levels<T>(d));
        }
    }
  }
}

TEST_CASE_TEMPLATE("par dithering: extremes, tiny scales and errors match seq", T, GRADCOMP_PAR_FLOATS) {
  const T big = std::numeric_limits<T>::max(), tiny = std::numeric_limits<T>::denorm_min();
  for (const std::size_t d : {std::size_t{1}, std::size_t{33}, std::size_t{70001}}) {
    CAPTURE(d);
    for (const auto p : {gc::dithering::linear, gc::dithering::natural})
      for (const auto n : {gc::dithering::max, gc::dithering::l2}) {
        CAPTURE(static_cast<int>(p));
        CAPTURE(static_cast<int>(n));
        const gc::dithering c{.s = 30, .partition = p, .norm = n, .seed = 3};
        std::vector<T> x(d, T(0));
        check_twice_as_seq(x, c, stale_levels<T>(d));  // scale 0: every level 0
        for (std::size_t i = 0; i < d; i += 3) x[i] = (i % 2 ? -tiny : tiny);
        check_twice_as_seq(x, c, stale_natural<T>(d));  // the scale underflows to 0 or a denormal
        for (std::size_t i = 0; i < d; ++i) x[i] = (i % 5 ? big : -big) / T(i % 7 + 1);
        if (n == gc::dithering::max) {  // the scale is near max(T); a linear one of s = 1 is max |x_i| exactly
          gc::dithering near = c;
          if (p == gc::dithering::linear) near.s = 1;
          check_twice_as_seq(x, near, stale_levels<T>(d));
        }
      }
  }
  const T specials[] = {std::numeric_limits<T>::quiet_NaN(), -std::numeric_limits<T>::infinity()};
  for_each_thread_count([&] {
    for (const std::size_t d : {std::size_t{5}, std::size_t{3 * 65536 + 4099}}) {
      const std::vector<T> good = gt::make_input<T>(gt::input_kind::normal, d, 1);
      for (const auto p : {gc::dithering::linear, gc::dithering::natural})
        for (const auto n : {gc::dithering::max, gc::dithering::l2}) {
          const gc::dithering c{.s = 3, .partition = p, .norm = n, .seed = 3, .step = 7};
          gc::quantized_vector<T> before;
          gc::dithering warm = c;
          gc::compress(gc::exec::seq, warm, good, before);
          for (const auto& policy : policies()) {
            for (const T bad : specials) {
              std::vector<T> x = good;
              x[d - 2] = bad;
              x[d / 2] = bad;  // the first one is named
              check_same_rejection(policy, c, std::span<const T>(x), before);
            }
            // Levels that would overflow: the l2 scale of two maxima is sqrt(2) max / 2^k.
            std::vector<T> huge = good;
            huge[0] = big;
            huge[d - 1] = -big;
            check_same_rejection(policy, gc::dithering{.s = 2, .partition = p, .norm = gc::dithering::l2, .seed = 1},
                                 std::span<const T>(huge), before);
          }
        }
    }
  });
}

TEST_CASE_TEMPLATE("par sign: a bad scale is rejected as on seq, the payload unchanged", T, GRADCOMP_PAR_FLOATS) {
  const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, 70001, 4);
  gc::sign_vector<T> before;
  gc::compress(gc::exec::seq, gc::sign{.scale = 0.5}, x, before);
  for (const auto& policy : policies())
    for (const double bad : {0.0, -2.0, std::numeric_limits<double>::infinity()})
      check_same_rejection(policy, gc::sign{.scale = bad}, std::span<const T>(x), before);
}

TEST_CASE_TEMPLATE("par momentum: Signum, DGC's masked momentum and Nesterov over error feedback match seq", T, float,
                   double) {
  using ef_top_k = gc::error_feedback<gc::top_k, T>;
  for (const std::size_t d : {std::size_t{1}, std::size_t{1000}, std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    for_each_thread_count([&] {
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        gc::momentum<gc::sign, T> signum_seq(gc::sign{}, d, 0.9), signum_par(gc::sign{}, d, 0.9);
        gc::momentum<ef_top_k, T> dgc_seq(ef_top_k(gc::top_k{.k = 1 + d / 100}, d), d, 0.9, gc::momentum_masking::sent);
        gc::momentum<ef_top_k, T> dgc_par(ef_top_k(gc::top_k{.k = 1 + d / 100}, d), d, 0.9, gc::momentum_masking::sent);
        // BytePS's Nesterov decorator around error feedback and scaled sign (its onebit).
        using ef_sign = gc::error_feedback<gc::scaled_sign, T>;
        gc::momentum<ef_sign, T> nesterov_seq(ef_sign(gc::scaled_sign{}, d), d, 0.9, gc::momentum_masking::none,
                                              gc::momentum_form::nesterov);
        gc::momentum<ef_sign, T> nesterov_par(ef_sign(gc::scaled_sign{}, d), d, 0.9, gc::momentum_masking::none,
                                              gc::momentum_form::nesterov);
        for (int step = 0; step < 3; ++step) {
          CAPTURE(step);
          const std::vector<T> g = gt::make_input<T>(gt::all_input_kinds[static_cast<std::size_t>(step)], d, d + step);
          check_same_payload(signum_seq.compress(gc::exec::seq, std::span<const T>(g)),
                             signum_par.compress(policy, std::span<const T>(g)));
          CHECK(gt::same_bits(signum_seq.velocity(), signum_par.velocity()));
          check_same_sparse(dgc_seq.compress(gc::exec::seq, std::span<const T>(g)),
                            dgc_par.compress(policy, std::span<const T>(g)), true);
          CHECK(gt::same_bits(dgc_seq.velocity(), dgc_par.velocity()));
          CHECK(gt::same_bits(dgc_seq.base().error(), dgc_par.base().error()));
          check_same_payload(nesterov_seq.compress(gc::exec::seq, std::span<const T>(g)),
                             nesterov_par.compress(policy, std::span<const T>(g)));
          CHECK(gt::same_bits(nesterov_seq.velocity(), nesterov_par.velocity()));
          CHECK(gt::same_bits(nesterov_seq.base().error(), nesterov_par.base().error()));
        }
      }
    });
  }
}

TEST_CASE_TEMPLATE("par ef21: estimates, messages and metrics match seq step by step", T, GRADCOMP_PAR_FLOATS) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{5000}, std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    for_each_thread_count([&] {
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        const std::size_t k = 1 + d / 50;
        gc::ef21<gc::top_k, T> top_seq(gc::top_k{.k = k}, d), top_par(gc::top_k{.k = k}, d);
        gc::ef21<gc::qsgd, T> q_seq(gc::qsgd{.s = 5, .seed = 2}, d), q_par(gc::qsgd{.s = 5, .seed = 2}, d);
        for (int step = 0; step < 3; ++step) {
          CAPTURE(step);
          const std::vector<T> g =
              gt::make_input<T>(gt::all_input_kinds[static_cast<std::size_t>(step) + 3], d, d * 7 + step);
          const T scale = step == 1 ? T(0.25) : T(1);
          check_same_sparse(top_seq.compress(gc::exec::seq, std::span<const T>(g), scale),
                            top_par.compress(policy, std::span<const T>(g), scale), true);
          CHECK(gt::same_bits(top_seq.estimate(), top_par.estimate()));
          CHECK(top_seq.metrics().total_error == top_par.metrics().total_error);
          check_same_payload(q_seq.compress(gc::exec::seq, std::span<const T>(g), scale),
                             q_par.compress(policy, std::span<const T>(g), scale));
          CHECK(gt::same_bits(q_seq.estimate(), q_par.estimate()));
          CHECK(q_seq.metrics().total_error == q_par.metrics().total_error);
        }
      }
    });
  }
}

TEST_CASE_TEMPLATE("par budget_threshold: messages and lambdas match seq under error feedback", T, GRADCOMP_PAR_FLOATS) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{5000}, std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    for_each_thread_count([&] {
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        const gc::budget_threshold c{.density = 0.01, .window = 4};
        gc::error_feedback<gc::budget_threshold, T> ref(c, d), got(c, d);
        for (int step = 0; step < 4; ++step) {
          CAPTURE(step);
          const std::vector<T> g = gt::make_input<T>(gt::all_input_kinds[static_cast<std::size_t>(step)], d, d + step);
          check_same_sparse(ref.compress(gc::exec::seq, std::span<const T>(g)), got.compress(policy, std::span<const T>(g)),
                            true);
          CHECK(ref.base().lambda == got.base().lambda);
          CHECK(gt::same_bits(ref.error(), got.error()));
        }
      }
    });
  }
}

TEST_CASE_TEMPLATE("par clip_to_norm: the same factor and bits as seq", T, GRADCOMP_PAR_FLOATS) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{5000}, std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    const std::vector<T> g = gt::make_input<T>(gt::input_kind::heavy_tailed, d, d);
    std::vector<T> ref = g;
    const T f_ref = gc::clip_to_norm(gc::exec::seq, std::span<T>(ref), 0.5);
    for_each_thread_count([&] {
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        std::vector<T> got = g;
        CHECK(gc::clip_to_norm(policy, std::span<T>(got), 0.5) == f_ref);
        CHECK(gt::same_bits(ref, got));
      }
    });
  }
}
