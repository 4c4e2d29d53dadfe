// qsgd and grid_rounding on exec::par: bit-identical to exec::seq for the same seed and
// step, the same step advance, and the same errors.
#include "par_compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

using namespace gradcomp_par_test;

namespace {

/// check_twice_as_seq into a stale quantized payload.
template <class T, class C>
void check_quantizer(const std::vector<T>& x, const C& c) {
  gc::quantized_vector<T> stale;
  stale.dim = 3;
  stale.scale = T(9);
  stale.level_bits = 17;
  stale.levels.assign(x.size() + 2, 12345);
  check_twice_as_seq(x, c, stale);
}

/// Values on and around rounding ties of a grid of spacing 1 (and their negatives).
template <class T>
std::vector<T> ties_input() {
  std::vector<T> x;
  for (int k = -40; k <= 40; ++k) {
    const T base = static_cast<T>(k);
    for (const T v : {base, base + T(0.5), base - T(0.5), std::nextafter(base + T(0.5), T(100)),
                      std::nextafter(base + T(0.5), T(-100)), base + T(0.25)})
      x.push_back(v);
  }
  x.push_back(T(0.49999999999999994));
  x.push_back(T(-0.49999999999999994));
  x.push_back(-T(0));
  x.push_back(static_cast<T>(8388609.0));  // float: odd integer above 2^23
  x.push_back(static_cast<T>(-536870911.5));  // double: a tie near the top of the level range
  return x;
}

}  // namespace

TEST_CASE_TEMPLATE("par qsgd: bit-identical to seq on every input kind, size and level count", T, GRADCOMP_PAR_FLOATS) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      // The largest size (16 chunks) for one kind; 3 * 65536 + 4099 already spans chunks.
      if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::normal) continue;
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 5);
      for (const std::uint32_t s : {1u, 2u, 7u, 255u, gc::qsgd::max_levels}) {
        CAPTURE(s);
        check_quantizer(x, gc::qsgd{.s = s, .seed = 11 + d, .step = 3});
      }
    }
  }
}

TEST_CASE_TEMPLATE("par qsgd: tiny norms (scale 0 in T) and huge ones", T, GRADCOMP_PAR_FLOATS) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{33}, std::size_t{70001}}) {
    CAPTURE(d);
    std::vector<T> x(d, T(0));
    check_quantizer(x, gc::qsgd{.s = 3});  // all zero
    for (std::size_t i = 0; i < d; i += 3) x[i] = (i % 2 ? T(-1) : T(1)) * std::numeric_limits<T>::denorm_min();
    check_quantizer(x, gc::qsgd{.s = 1});
    check_quantizer(x, gc::qsgd{.s = gc::qsgd::max_levels});  // scale rounds to 0: levels all 0
    for (std::size_t i = 0; i < d; ++i) x[i] = (i % 5 ? T(1) : T(-1)) * std::numeric_limits<T>::max() / T(1e3);
    if (d < 1000) check_quantizer(x, gc::qsgd{.s = 4});  // double: the squares overflow, l2_norm's rescue
  }
}

TEST_CASE_TEMPLATE("par grid_rounding: bit-identical to seq, nearest and stochastic", T, GRADCOMP_PAR_FLOATS) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::heavy_tailed) continue;  // as above
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 7);
      for (const double spacing : {1.0, 0.25, 0.01, 1e-6}) {
        for (const bool stochastic : {false, true}) {
          CAPTURE(spacing);
          CAPTURE(stochastic);
          check_quantizer(x, gc::grid_rounding{.spacing = spacing, .stochastic = stochastic, .seed = d, .step = 1});
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("par grid_rounding: ties round half away from zero, as std::round", T, GRADCOMP_PAR_FLOATS) {
  const std::vector<T> x = ties_input<T>();
  for (const bool stochastic : {false, true}) {
    for (const double spacing : {1.0, 0.5, 2.0}) {
      CAPTURE(stochastic);
      CAPTURE(spacing);
      check_quantizer(x, gc::grid_rounding{.spacing = spacing, .stochastic = stochastic});
    }
  }
  gc::grid_rounding c{.spacing = 1.0};
  gc::quantized_vector<T> out;
  const std::vector<T> halves{T(0.5), T(-0.5), T(1.5), T(-2.5), T(0.49999997)};
  gc::compress(gc::exec::par.with_min_parallel_size(0), c, halves, out);
  CHECK(out.levels == std::vector<std::int32_t>{1, -1, 2, -3, 0});
}

TEST_CASE_TEMPLATE("par qsgd: errors match seq, out and step unchanged", T, GRADCOMP_PAR_FLOATS) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for_each_thread_count([&] {
    for (const std::size_t d : {std::size_t{5}, std::size_t{70001}, std::size_t{3 * 65536 + 4099}}) {
      CAPTURE(d);
      const std::vector<T> good = gt::make_input<T>(gt::input_kind::normal, d, 1);
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        gc::quantized_vector<T> before;
        gc::qsgd warm{.s = 3};
        gc::compress(gc::exec::seq, warm, good, before);
        const auto expect_same_error = [&](const gc::qsgd& c, const std::vector<T>& x) {
          check_same_rejection(policy, c, std::span<const T>(x), before);
        };
        expect_same_error(gc::qsgd{.s = 0, .step = 4}, good);
        expect_same_error(gc::qsgd{.s = gc::qsgd::max_levels + 1, .step = 4}, good);
        for (const T bad : {nan, -nan, inf, -inf}) {
          for (const std::size_t where : {std::size_t{0}, d / 2, d - 1}) {
            CAPTURE(where);
            std::vector<T> x = good;
            x[where] = bad;
            if (where != d - 1) x[d - 1] = -bad;  // the first one is named
            expect_same_error(gc::qsgd{.s = 2, .step = 9}, x);
          }
        }
        std::vector<T> huge(d, std::numeric_limits<T>::max());
        expect_same_error(gc::qsgd{.s = 1, .step = 2}, huge);  // ||x|| overflows (double) or the scale T (float)
      }
    }
  });
}

TEST_CASE_TEMPLATE("par grid_rounding: errors match seq, out and step unchanged", T, GRADCOMP_PAR_FLOATS) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for_each_thread_count([&] {
    for (const std::size_t d : {std::size_t{5}, std::size_t{70001}, std::size_t{3 * 65536 + 4099}}) {
      CAPTURE(d);
      const std::vector<T> good = gt::make_input<T>(gt::input_kind::normal, d, 2);
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        gc::quantized_vector<T> before;
        gc::grid_rounding warm{.spacing = 0.5};
        gc::compress(gc::exec::seq, warm, good, before);
        const auto expect_same_error = [&](const gc::grid_rounding& c, const std::vector<T>& x) {
          check_same_rejection(policy, c, std::span<const T>(x), before);
        };
        for (const double spacing : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity(), 1e-300, 1e300}) {
          CAPTURE(spacing);
          if (sizeof(T) == 8 && (spacing == 1e-300 || spacing == 1e300)) continue;  // valid for double
          expect_same_error(gc::grid_rounding{.spacing = spacing, .step = 5}, good);
        }
        for (const bool stochastic : {false, true}) {
          CAPTURE(stochastic);
          for (const T bad : {nan, -nan, inf, -inf, T(3e9), T(-3e9)}) {
            for (const std::size_t where : {std::size_t{0}, d / 2, d - 1}) {
              CAPTURE(where);
              std::vector<T> x = good;
              x[where] = bad;
              expect_same_error(gc::grid_rounding{.spacing = 1.0, .stochastic = stochastic, .step = 8}, x);
              // An out-of-range entry first and a NaN later: the NaN is named (the reference
              // checks finiteness over all of x first).
              if (where != d - 1) {
                x[d - 1] = nan;
                x[where] = T(-5e9);
                expect_same_error(gc::grid_rounding{.spacing = 1.0, .stochastic = stochastic, .step = 8}, x);
              }
            }
          }
        }
      }
    }
  });
}

TEST_CASE_TEMPLATE("par error_feedback<qsgd>: bit-identical to seq over several steps", T, GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const std::size_t d : feedback_sizes()) {
      for (const auto& policy : policies()) {
        CAPTURE(d);
        CAPTURE(policy_name(policy));
        check_feedback_steps<T>(gc::qsgd{.s = 4, .seed = 99, .step = 2}, d, policy);
        check_feedback_steps<T>(gc::qsgd{.s = 1, .seed = 5}, d, policy);
        check_feedback_steps<T>(gc::grid_rounding{.spacing = 0.125, .stochastic = true, .seed = 4}, d, policy);
        check_feedback_steps<T>(gc::grid_rounding{.spacing = 0.3}, d, policy);
      }
    }
  });
}

namespace {

/// Inputs near the top of T's range: the example, large vectors with +-max (and
/// slightly less) placed inside, and many entries of about max / 1000.
template <class T>
std::vector<std::vector<T>> near_max_inputs() {
  const T top = std::numeric_limits<T>::max();
  std::vector<std::vector<T>> inputs;
  inputs.push_back({top, -top, T(1), T(2)});
  for (const std::size_t d : {std::size_t{100'003}, std::size_t{300'001}}) {
    for (const T factor : {T(1), T(0.999), T(0.5)}) {
      std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, d, d);
      x[d / 3] = top * factor;
      x[d - 1] = -top * factor;
      inputs.push_back(std::move(x));
    }
  }
  std::vector<T> many(200'000);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = (i % 2 ? -top : top) / static_cast<T>(1000 + i % 7);
  inputs.push_back(std::move(many));
  return inputs;
}

/// seq and par agree on c(x): both throw the same error, leaving out and step as they were,
/// or both give the same payload and step.
template <class T, class C, class Payload>
void check_same_outcome(const std::vector<T>& x, const C& c, const Payload& before) {
  C seq_c = c;
  Payload ref = before;
  bool seq_threw = false;
  try {
    gc::compress(gc::exec::seq, seq_c, x, ref);
  } catch (const gc::error&) {
    seq_threw = true;
  }
  for (const auto& policy : policies()) {
    CAPTURE(policy_name(policy));
    if (seq_threw) {
      check_same_rejection(policy, c, std::span<const T>(x), before);
      continue;
    }
    C par_c = c;
    Payload got = before;
    gc::compress(policy, par_c, x, got);
    CHECK(par_c.step == seq_c.step);
    if constexpr (requires { got.values; }) {
      check_same_payload(ref, got, /*computed=*/true);
      CHECK(std::all_of(got.values.begin(), got.values.end(), [](T v) { return std::isfinite(v); }));
    } else {
      check_same_payload(ref, got);
    }
  }
}

}  // namespace

TEST_CASE_TEMPLATE("par quantizers near the top of the range: the same error or the same finite payload", T, float,
                   double) {
  const T top = std::numeric_limits<T>::max();
  for (const auto& x : near_max_inputs<T>()) {
    CAPTURE(x.size());
    const gc::quantized_vector<T> before;
    for (const std::uint32_t s : {1u, 8u, 1000u, 1u << 20, 1u << 30})
      check_same_outcome(x, gc::qsgd{.s = s, .seed = 3, .step = 1}, before);
    for (const double spacing : {double(top) / 2147483648.0 * 1.01, double(top) / 1e6, 0.6 * double(top),
                                 double(top) / 3}) {
      for (const bool stochastic : {false, true})
        check_same_outcome(x, gc::grid_rounding{.spacing = spacing, .stochastic = stochastic, .seed = 4}, before);
    }
    const gc::seeded_sparse_vector<T> sparse_before;
    const std::size_t d = x.size();
    for (const std::size_t k : {std::size_t{2}, d / 1000 + 1, d / 2, d - 1})
      check_same_outcome(x, gc::unbiased_random_k{.k = k, .seed = 5, .step = 2}, sparse_before);
  }
}
