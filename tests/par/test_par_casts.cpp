// float16_cast, bfloat16_cast and natural_compression on exec::par: bit-identical to exec::seq
// (the same codes and scale exponent, for natural compression the same draws and step
// advance), and the same errors with the output and step unchanged.
#include "par_compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

using namespace gradcomp_par_test;

namespace {

/// check_twice_as_seq into a stale float-code payload (natural compression's second call
/// draws other numbers).
template <class T, class C>
void check_codes(const std::vector<T>& x, const C& c) {
  gc::float_code_vector<T> stale;
  stale.dim = 3;
  stale.format = gc::code_format::power_of_two;
  stale.scale_exponent = 7;
  stale.codes.assign(x.size() + 2, 0x1234);
  check_twice_as_seq(x, c, stale);
}

/// Every compressor of the float_code payload, in the configurations worth comparing.
template <class T>
void check_all_compressors(const std::vector<T>& x, std::uint64_t seed) {
  check_codes(x, gc::float16_cast{});
  check_codes(x, gc::bfloat16_cast{});
  check_codes(x, gc::natural_compression{.seed = seed, .step = 3});
}

/// Inputs that move every branch of the element rules: zeros of both signs, denormals of T,
/// exact ties of float16 at the scale pre_scale picks, values far above 65504 and far below
/// float16's range, the top binade's power of two.
template <class T>
std::vector<std::vector<T>> adversarial_inputs() {
  const T dm = std::numeric_limits<T>::denorm_min();
  std::vector<std::vector<T>> inputs;
  std::vector<T> ties{T(24576)};  // 1.5 * 2^14: pre_scale keeps e = 0, so the halves below are ties
  for (int k = 1; k < 3000; ++k) ties.push_back((k % 2 ? T(1) : T(-1)) * (T(k) + T(0.5)) * T(0.0009765625));
  inputs.push_back(ties);
  std::vector<T> mixed(70001);
  for (std::size_t i = 0; i < mixed.size(); ++i) {
    switch (i % 7) {
      case 0: mixed[i] = i % 2 ? T(0) : -T(0); break;
      case 1: mixed[i] = dm * static_cast<T>(i % 2049); break;
      case 2: mixed[i] = T(65504) + static_cast<T>(i % 40); break;
      case 3: mixed[i] = -T(1e-30) * static_cast<T>(i % 13); break;
      case 4: mixed[i] = std::ldexp(T(1), static_cast<int>(i % 61) - 30); break;
      case 5: mixed[i] = static_cast<T>(i) * T(1.0000001); break;
      default: mixed[i] = -std::numeric_limits<T>::min() * T(0.75); break;
    }
  }
  inputs.push_back(mixed);
  std::vector<T> denormals(5000);
  for (std::size_t i = 0; i < denormals.size(); ++i) denormals[i] = (i % 3 ? dm : -dm) * static_cast<T>(i);
  inputs.push_back(denormals);
  std::vector<T> top(3 * 65536 + 4099, T(1));
  top[65536] = std::ldexp(T(1), std::numeric_limits<T>::max_exponent - 1);
  top[100] = -top[65536];
  inputs.push_back(top);
  return inputs;
}

}  // namespace

TEST_CASE_TEMPLATE("par casts: bit-identical to seq on every input kind and size", T, GRADCOMP_PAR_FLOATS) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      // The largest size (16 chunks) for one kind; 3 * 65536 + 4099 already spans chunks.
      if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::heavy_tailed) continue;
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 9);
      check_all_compressors(x, d + 1);
      if (kind == gt::input_kind::normal) check_codes(x, gc::float16_cast{.pre_scale = false});
    }
  }
}

TEST_CASE_TEMPLATE("par casts: adversarial inputs", T, GRADCOMP_PAR_FLOATS) {
  for (const auto& x : adversarial_inputs<T>()) {
    CAPTURE(x.size());
    check_all_compressors(x, 17);
    // The plain cast where nothing overflows bfloat16 (the top binade of double would).
    if (std::all_of(x.begin(), x.end(), [](T v) { return std::fabs(v) < T(1e38); }))
      check_codes(x, gc::bfloat16_cast{.pre_scale = false});
  }
}

TEST_CASE_TEMPLATE("par casts: errors match seq, out and step unchanged", T, GRADCOMP_PAR_FLOATS) {
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T top = std::numeric_limits<T>::max();
  for_each_thread_count([&] {
    for (const std::size_t d : {std::size_t{5}, std::size_t{70001}, std::size_t{3 * 65536 + 4099}}) {
      CAPTURE(d);
      const std::vector<T> good = gt::make_input<T>(gt::input_kind::normal, d, 3);
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        gc::float_code_vector<T> before;
        gc::compress(gc::exec::seq, gc::float16_cast{}, good, before);
        const auto expect_same_error = [&](const auto& c, const std::vector<T>& x) {
          check_same_rejection(policy, c, std::span<const T>(x), before);
        };
        for (const T bad : {nan, -nan, inf, -inf, top, -top}) {
          for (const std::size_t where : {std::size_t{0}, d / 2, d - 1}) {
            CAPTURE(where);
            std::vector<T> x = good;
            x[where] = bad;
            if (where != d - 1) x[d - 1] = nan;  // a NaN later: named first only if bad is not finite
            expect_same_error(gc::float16_cast{}, x);
            expect_same_error(gc::bfloat16_cast{.pre_scale = false}, x);
            expect_same_error(gc::natural_compression{.seed = 2, .step = 5}, x);
          }
        }
        // Without pre_scale a float16 overflow is named by its index; several: the first.
        std::vector<T> x = good;
        x[d - 1] = T(70000);
        if (d > 2) x[d / 2] = T(-65520);
        expect_same_error(gc::float16_cast{.pre_scale = false}, x);
      }
    }
  });
}

// (bfloat16_cast runs the same kernel as float16_cast with another layout; the tests above
// compare it on every input.)
TEST_CASE_TEMPLATE("par error_feedback over float16_cast and natural compression: bit-identical to seq", T, float,
                   double) {
  for_each_thread_count([] {
    for (const std::size_t d : feedback_sizes()) {
      for (const auto& policy : policies()) {
        CAPTURE(d);
        CAPTURE(policy_name(policy));
        check_feedback_steps<T>(gc::float16_cast{}, d, policy);
        check_feedback_steps<T>(gc::natural_compression{.seed = 8, .step = 1}, d, policy);
      }
    }
  });
}

TEST_CASE_TEMPLATE("par compress_layers and compress_model over the float code compressors: bit-identical to seq", T,
                   GRADCOMP_PAR_FLOATS) {
  std::vector<std::vector<T>> storage;
  std::vector<std::span<const T>> tensors;
  const auto sizes = gt::layer_sizes(60, 70000, 3);
  for (std::size_t i = 0; i < sizes.size(); ++i)
    storage.push_back(gt::make_input<T>(gt::all_input_kinds[i % std::size(gt::all_input_kinds)], sizes[i], 40 + i));
  for (const auto& s : storage) tensors.emplace_back(s);
  const std::size_t n = tensors.size();
  for_each_thread_count([&] {
    for (const auto& policy : policies()) {
      CAPTURE(policy_name(policy));
      {
        std::vector<gc::float_code_vector<T>> ref(n), got(n);
        gc::compress_layers(gc::exec::seq, gc::float16_cast{}, tensors, ref);
        gc::compress_layers(policy, gc::float16_cast{}, tensors, got);
        for (std::size_t i = 0; i < n; ++i) check_same_payload(ref[i], got[i]);
      }
      {
        // Seeded: tensor i uses step0 + i, and the compressor ends at step0 + n.
        gc::natural_compression seq_c{.seed = 12, .step = 4}, par_c = seq_c;
        std::vector<gc::float_code_vector<T>> ref(n), got(n);
        gc::compress_layers(gc::exec::seq, seq_c, tensors, ref);
        gc::compress_layers(policy, par_c, tensors, got);
        CHECK(seq_c.step == 4 + n);
        CHECK(par_c.step == seq_c.step);
        for (std::size_t i = 0; i < n; ++i) check_same_payload(ref[i], got[i]);
      }
      {
        gc::float_code_vector<T> ref, got;  // one pre-scale for the whole model
        gc::compress_model(gc::exec::seq, gc::bfloat16_cast{}, tensors, ref);
        gc::compress_model(policy, gc::bfloat16_cast{}, tensors, got);
        check_same_payload(ref, got);
      }
    }
  });
}
