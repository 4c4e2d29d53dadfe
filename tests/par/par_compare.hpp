#pragma once
// Comparisons of exec::par results with exec::seq ones: payloads field by field, errors by
// message, and error_feedback runs step by step.
#include "../unit/error_message.hpp"
#include "par_support.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace gradcomp_par_test {

using gradcomp_test::error_message;

/// Both throw gc::error with the same message.
template <class Seq, class Par>
void check_same_error(Seq&& seq_call, Par&& par_call) {
  const std::string expected = error_message(seq_call);
  const std::string got = error_message(par_call);
  CAPTURE(expected);
  CHECK(!expected.empty());
  CHECK(got == expected);
}

/// Same indices, and values with the same bits (copied from x) or, when `computed`, the same
/// results (NaN payloads may differ; see gt::same_result).
template <class T, class Index>
void check_same_sparse(const gc::sparse_vector<T, Index>& ref, const gc::sparse_vector<T, Index>& got,
                       bool computed = false) {
  REQUIRE(ref.dim == got.dim);
  REQUIRE(ref.indices == got.indices);
  if (computed)
    CHECK(gt::same_result(ref.values, got.values));
  else
    CHECK(gt::same_bits(ref.values, got.values));
}

template <class T>
void check_same_payload(const gc::sign_vector<T>& ref, const gc::sign_vector<T>& got) {
  REQUIRE(ref.dim == got.dim);
  REQUIRE(ref.block_size == got.block_size);
  CHECK(ref.negative == got.negative);
  CHECK(gt::same_result(ref.scales, got.scales));  // computed: NaN payloads may differ
}

template <class T>
void check_same_payload(const gc::quantized_vector<T>& ref, const gc::quantized_vector<T>& got) {
  REQUIRE(ref.dim == got.dim);
  CHECK(gt::bits(ref.scale) == gt::bits(got.scale));
  CHECK(ref.level_bits == got.level_bits);
  CHECK(ref.coding == got.coding);
  CHECK(ref.levels == got.levels);
}

template <class T>
void check_same_payload(const gc::two_level_vector<T>& ref, const gc::two_level_vector<T>& got) {
  REQUIRE(ref.dim == got.dim);
  REQUIRE(ref.block_size == got.block_size);
  CHECK(ref.negative == got.negative);
  CHECK(gt::same_result(ref.lows, got.lows));  // computed: NaN payloads may differ
  CHECK(gt::same_result(ref.highs, got.highs));
}

template <class T>
void check_same_payload(const gc::bucket_quantized_vector<T>& ref, const gc::bucket_quantized_vector<T>& got) {
  REQUIRE(ref.dim == got.dim);
  CHECK(ref.bucket_size == got.bucket_size);
  CHECK(ref.bits == got.bits);
  CHECK(gt::same_bits(ref.mins, got.mins));  // a -0 min would differ from +0 here
  CHECK(gt::same_bits(ref.units, got.units));
  CHECK(ref.levels == got.levels);
}

/// values are computed (scaled, or p = e + scale * g under error feedback) when `computed`.
template <class T, class Index>
void check_same_payload(const gc::seeded_sparse_vector<T, Index>& ref, const gc::seeded_sparse_vector<T, Index>& got,
                        bool computed = true) {
  REQUIRE(ref.dim == got.dim);
  CHECK(ref.seed == got.seed);
  CHECK(ref.step == got.step);
  REQUIRE(ref.indices == got.indices);
  if (computed)
    CHECK(gt::same_result(ref.values, got.values));
  else
    CHECK(gt::same_bits(ref.values, got.values));
}

template <class T>
void check_same_payload(const gc::dense_vector<T>& ref, const gc::dense_vector<T>& got, bool computed = true) {
  if (computed)
    CHECK(gt::same_result(ref.values, got.values));
  else
    CHECK(gt::same_bits(ref.values, got.values));
}

/// Codes are bit patterns: compared exactly, as the format and the scale exponent.
template <class T>
void check_same_payload(const gc::float_code_vector<T>& ref, const gc::float_code_vector<T>& got) {
  REQUIRE(ref.dim == got.dim);
  CHECK(ref.format == got.format);
  CHECK(ref.scale_exponent == got.scale_exponent);
  CHECK(ref.codes == got.codes);
}

/// The seeded compressors' step (0 for the others).
template <class C>
std::uint64_t step_of(const C& c) {
  if constexpr (requires { c.step; })
    return c.step;
  else
    return 0;
}

/// gc::compress(c, x) on seq and on policy into outputs holding `before` (an earlier
/// result): both throw the same gc::error and leave the output and c's step as they were.
template <class C, class T, class Payload>
void check_same_rejection(const gc::exec::par_t& policy, const C& c, std::span<const T> x, const Payload& before) {
  Payload seq_out = before, par_out = before;
  C seq_c = c, par_c = c;
  check_same_error([&] { gc::compress(gc::exec::seq, seq_c, x, seq_out); },
                   [&] { gc::compress(policy, par_c, x, par_out); });
  CHECK(seq_out == before);
  CHECK(par_out == before);
  CHECK(step_of(seq_c) == step_of(c));
  CHECK(step_of(par_c) == step_of(c));
}

/// Runs c twice in a row on seq, and on every policy under every thread count into a copy
/// of `stale` (output that must be replaced entirely): the same payloads after each call, and
/// the same step afterwards (seeded compressors draw other numbers on the second call).
template <class T, class C, class Payload>
void check_twice_as_seq(const std::vector<T>& x, const C& c, const Payload& stale) {
  C seq_c = c;
  Payload ref1, ref2;
  gc::compress(gc::exec::seq, seq_c, x, ref1);
  gc::compress(gc::exec::seq, seq_c, x, ref2);
  for_each_thread_count([&] {
    for (const auto& policy : policies()) {
      CAPTURE(policy_name(policy));
      C par_c = c;
      Payload got = stale;
      gc::compress(policy, par_c, x, got);
      check_same_payload(ref1, got);
      gc::compress(policy, par_c, x, got);
      check_same_payload(ref2, got);
      CHECK(step_of(par_c) == step_of(seq_c));
    }
  });
}

/// error_feedback<C> on seq and on policy, fed the same gradients for `steps` steps: the
/// messages, residuals, metrics and compressor steps agree after every step. At the last
/// step the gradient holds NaN, Inf and -0: error feedback rejects non-finite input for every
/// compressor, so both must throw the same error and leave both residuals as they were.
template <class T, class C>
void check_feedback_steps(const C& c, std::size_t d, const gc::exec::par_t& policy, int steps = 4) {
  gc::error_feedback<C, T> ref(c, d);
  gc::error_feedback<C, T> got(c, d);
  for (int step = 0; step < steps; ++step) {
    CAPTURE(step);
    const auto kind =
        gt::all_input_kinds[static_cast<std::size_t>(step + static_cast<int>(d)) % std::size(gt::all_input_kinds)];
    std::vector<T> g = gt::make_input<T>(kind, d, d * 13 + static_cast<std::size_t>(step));
    const bool specials = step == steps - 1 && d > 0;
    if (specials) place_specials(g, d + 5, 1 + d / 5000);
    const T scale = step % 2 == 0 ? T(1) : T(0.3);  // the e + g path and the e + scale * g path
    if (specials) {
      const std::vector<T> before(ref.error().begin(), ref.error().end());
      check_same_error([&] { ref.compress(gc::exec::seq, std::span<const T>(g), scale); },
                       [&] { got.compress(policy, std::span<const T>(g), scale); });
      CHECK(gt::same_result(std::span<const T>(before), got.error()));
      CHECK(gt::same_result(ref.error(), got.error()));
      CHECK(got.metrics().steps == static_cast<std::uint64_t>(step));
      CHECK(step_of(ref.base()) == step_of(got.base()));
      continue;
    }
    const auto& m_ref = ref.compress(gc::exec::seq, std::span<const T>(g), scale);
    const auto& m_got = got.compress(policy, std::span<const T>(g), scale);
    check_same_payload(m_ref, m_got);
    REQUIRE(gt::same_result(ref.error(), got.error()));
    CHECK(ref.metrics().steps == got.metrics().steps);
    CHECK(ref.metrics().elements_sent == got.metrics().elements_sent);
    CHECK(ref.metrics().wire_bytes == got.metrics().wire_bytes);
    CHECK(gt::same_result(ref.metrics().total_error, got.metrics().total_error));
    CHECK(step_of(ref.base()) == step_of(got.base()));
  }
}

/// Sizes for the multi-step error-feedback runs: the edges of par_sizes() without the
/// largest ones.
inline const std::vector<std::size_t>& feedback_sizes() {
  static const std::vector<std::size_t> sizes{0, 1, 7, 16, 17, 63, 64, 65, 4095, 4097, 8193, 65536, 65537,
                                              3 * 65536 + 4099};
  return sizes;
}

}  // namespace gradcomp_par_test
