// float16_cast, bfloat16_cast, natural_compression and maxmin_quantizer on the CUDA back end
// against exec::seq, bit for bit: the codes (round to nearest even from T in one rounding;
// natural compression's draws from the same counter stream), the scale exponent, the buckets'
// (min, unit) and levels, the step, the wire bytes; the errors (input the reference rejects is
// rejected with its message, out and the step unchanged); decompress_add; and the
// error-feedback steps.
#include "cuda_support.cuh"

#include <cmath>
#include <limits>
#include <string>

#include "../unit/error_message.hpp"

using namespace gradcomp_cuda_test;

namespace {

/// The reference's error message for c on x, or "" when it accepts x (c is copied: its step
/// stays).
template <class C, class T>
std::string reference_error(C c, const std::vector<T>& x) {
  gc::payload_t<C, T> scratch;
  try {
    gc::compress(gc::exec::seq, c, x, scratch);
  } catch (const gc::error& e) {
    return e.what();
  }
  return "";
}

/// exec::seq and the device on x from the same compressor state: the same host payload, the
/// same step, the same wire bytes; or, where the reference throws, the same message, with the
/// device payload and the step unchanged.
template <class T, class C>
void check_same(const C& c, const std::vector<T>& x, gc::cuda::device_payload_t<C, T>& out) {
  C host = c, device = c;
  const device_copy<T> dx(x);
  if (const std::string message = reference_error(c, x); !message.empty()) {
    const auto kept = out.to_host();
    CHECK_THROWS_WITH_AS(gc::compress(gc::cuda::par, device, dx.span(), out), message.c_str(), gc::error);
    if constexpr (gc::seeded_compressor<C>) CHECK(device.step == c.step);
    CHECK(out.to_host() == kept);
    return;
  }
  gc::payload_t<C, T> want;
  gc::compress(gc::exec::seq, host, x, want);
  gc::compress(gc::cuda::par, device, dx.span(), out);
  if constexpr (gc::seeded_compressor<C>) CHECK(device.step == host.step);
  const auto got = out.to_host();
  if constexpr (std::is_same_v<gc::payload_t<C, T>, gc::bucket_quantized_vector<T>>) {
    REQUIRE(got.dim == want.dim);
    REQUIRE(got.bucket_size == want.bucket_size);
    REQUIRE(got.bits == want.bits);
    REQUIRE(gt::same_bits(got.mins, want.mins));
    REQUIRE(gt::same_bits(got.units, want.units));
    REQUIRE(got.levels == want.levels);
  } else {
    REQUIRE(got.dim == want.dim);
    REQUIRE(got.format == want.format);
    REQUIRE(got.scale_exponent == want.scale_exponent);
    REQUIRE(got.codes == want.codes);
  }
  CHECK(out.wire_bytes() == want.wire_bytes());
  CHECK(out.sent_elements() == want.sent_elements());
  CHECK(out.encode() == gc::encode(want));
}

/// The reference rejects x: the device throws the same message; a message sent before and
/// the step stay.
template <class T, class C>
void check_rejected(C c, const std::vector<T>& x, const std::string& word) {
  const std::string message = reference_error(c, x);
  CAPTURE(message);
  REQUIRE(gt::contains(message, word));
  gc::cuda::device_payload_t<C, T> out;
  const std::vector<T> fine{T(1), T(-2), T(0.375)};
  const device_copy<T> before(fine);
  if (reference_error(c, fine).empty()) gc::compress(gc::cuda::par, c, before.span(), out);  // a message to keep
  const auto kept = out.to_host();
  const C after_ok = c;
  const device_copy<T> dx(x);
  CHECK_THROWS_WITH_AS(gc::compress(gc::cuda::par, c, dx.span(), out), message.c_str(), gc::error);
  if constexpr (gc::seeded_compressor<C>) CHECK(c.step == after_ok.step);
  CHECK(out.to_host() == kept);
}

/// Exact midpoints between neighbouring codes of a 16-bit format (ties to even, both signs),
/// with one entry that fixes the pre-scale exponent at 0 (1.5 * 2^(emax - 1)).
template <class T>
std::vector<T> format_ties(gc::code_format f) {
  const auto layout = gc::detail::layout_of(f);
  std::vector<T> ties{static_cast<T>(1.5 * std::ldexp(1.0, layout.bias() - 1))};
  for (unsigned c : {0u, 1u, 2u, 3u, 127u, 128u, 129u, 1023u, 1024u, 1025u, 0x3bffu, 0x3c00u, 0x3c01u, 0x5000u, 0x5001u}) {
    if (c + 1 >= layout.inf_code()) continue;
    const double mid = (gc::detail::code_value<T>(f, static_cast<std::uint16_t>(c)) +
                        gc::detail::code_value<T>(f, static_cast<std::uint16_t>(c + 1))) /
                       2;
    if (static_cast<double>(static_cast<T>(mid)) != mid) continue;  // not a T (float16's tiny ties in float: they are)
    ties.push_back(static_cast<T>(mid));
    ties.push_back(-static_cast<T>(mid));
  }
  return ties;
}

/// Adversarial inputs of the casts: ties, zeros of both signs, denormals of T, values around
/// float16's largest (65504) and its overflow tie (65520), T's largest values that do not
/// overflow, and ranges beyond float16's at both ends.
template <class T>
std::vector<std::vector<T>> cast_inputs(gc::code_format f) {
  const T big = std::numeric_limits<T>::max();
  const T dm = std::numeric_limits<T>::denorm_min();
  const int mantissa_bits = gc::detail::layout_of(f).mantissa_bits;
  const long double tie_of_top =
      std::ldexp(2.0L - std::ldexp(1.0L, -(mantissa_bits + 1)), std::numeric_limits<T>::max_exponent - 1);
  const T below_tie = std::nextafter(static_cast<T>(tie_of_top), T(0));
  std::vector<std::vector<T>> out{
      format_ties<T>(f),
      {T(0), -T(0), T(0)},
      {-T(0), T(1), -T(0), T(-2.5)},
      {dm, -dm, T(3) * dm, T(1000) * dm, T(0), T(2047) * dm},
      {T(65504), T(65519.99), T(65520), T(-65520), T(70000), T(-1e5), T(0.001), T(3e-8)},
      {big / T(3), T(1), -T(1e-20), std::numeric_limits<T>::min()},
      {below_tie, -below_tie, T(1), dm},
      {T(1e30), T(1e-30), T(-3.75)},
      {big, T(1)},                     // rejected with pre_scale: rounds to 2^(emax(T) + 1)
      {static_cast<T>(tie_of_top)}};  // the tie itself: rejected too
  // The same values spread over sizes that are not multiples of the block sizes.
  for (const std::size_t d : {std::size_t{4097}, std::size_t{65537}}) {
    std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, d, d);
    const std::vector<T> ties = format_ties<T>(f);
    for (std::size_t i = 0; i < d; i += 7) x[i] = ties[i % ties.size()];
    for (std::size_t i = 3; i < d; i += 11) x[i] = (i % 2 == 0) ? -T(0) : T(17) * dm;
    out.push_back(x);
  }
  return out;
}

/// Adversarial inputs of natural compression: powers of two (kept), the top binade's power of
/// two and the largest value below it, denormals (0 or the smallest normal), zeros of both
/// signs, T's smallest normal and values just above powers of two.
template <class T>
std::vector<std::vector<T>> natural_inputs() {
  const T dm = std::numeric_limits<T>::denorm_min();
  const T top_power = std::ldexp(T(1), std::numeric_limits<T>::max_exponent - 1);
  const T tiny = std::numeric_limits<T>::min();
  std::vector<std::vector<T>> out{
      {T(1), T(-2), T(0.5), T(1024), -T(0), T(0)},
      {top_power, -top_power, std::nextafter(top_power, T(0)), -std::nextafter(top_power, T(0))},
      {dm, -dm, T(3) * dm, T(1000) * dm, tiny, -tiny, std::nextafter(tiny, T(0))},
      {std::nextafter(T(1), T(2)), std::nextafter(T(2), T(1)), T(1.5), T(-1.75), T(3), T(1) / T(3)},
  };
  std::vector<T> mixed = gt::make_input<T>(gt::input_kind::heavy_tailed, 65537, 9);
  for (std::size_t i = 0; i < mixed.size(); i += 5) mixed[i] = (i % 3 == 0) ? T(i % 64) * dm : std::ldexp(T(1), int(i % 40) - 20);
  out.push_back(mixed);
  return out;
}

/// Bucket sizes: one element, below and above a warp, a warp tile and around it, a reduction
/// block and just over it, the whole vector, beyond it.
std::vector<std::size_t> bucket_sizes(std::size_t d) {
  std::vector<std::size_t> b{1, 7, 32, 33, 1000, 1024, 1025, 4097, d + 1};
  if (d > 0) b.push_back(d);
  return b;
}

}  // namespace

TEST_CASE_TEMPLATE("casts: exec::seq's codes and scale exponent on every input kind and size", T, float, double) {
  gc::cuda::float_code_vector<T> out;  // reused across calls
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 41);
      for (const bool pre_scale : {true, false}) {
        CAPTURE(pre_scale);
        check_same(gc::float16_cast{.pre_scale = pre_scale}, x, out);
        check_same(gc::bfloat16_cast{.pre_scale = pre_scale}, x, out);
      }
    }
  }
}

TEST_CASE_TEMPLATE("casts: adversarial inputs (ties, zeros, -0, denormals, above 65504, near max)", T, float, double) {
  gc::cuda::float_code_vector<T> out;
  for (const gc::code_format f : {gc::code_format::float16, gc::code_format::bfloat16}) {
    for (const std::vector<T>& x : cast_inputs<T>(f)) {
      CAPTURE(static_cast<int>(f));
      CAPTURE(x.size());
      for (const bool pre_scale : {true, false}) {
        CAPTURE(pre_scale);
        if (f == gc::code_format::float16)
          check_same(gc::float16_cast{.pre_scale = pre_scale}, x, out);
        else
          check_same(gc::bfloat16_cast{.pre_scale = pre_scale}, x, out);
      }
    }
  }
}

TEST_CASE_TEMPLATE("casts: input the reference rejects gives its error, out stays", T, float, double) {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  for (const T bad : {nan, -nan, inf, -inf}) {
    std::vector<T> x(10000, T(1));
    x[5000] = bad;
    x[9000] = -bad;  // a later one is not named
    check_rejected(gc::float16_cast{}, x, "x[5000]");
    check_rejected(gc::bfloat16_cast{.pre_scale = false}, x, "x[5000]");
  }
  const T top = std::numeric_limits<T>::max();
  check_rejected(gc::float16_cast{}, std::vector<T>{T(1), T(-2), top, top}, "overflows the value type");
  check_rejected(gc::bfloat16_cast{}, std::vector<T>{T(1), T(-2), -top, top}, "x[2]");
  check_rejected(gc::float16_cast{.pre_scale = false}, std::vector<T>{T(1), T(-65520), T(1e6)}, "pre_scale = true");
}

TEST_CASE_TEMPLATE("natural_compression: exec::seq's codes (the same draws) and step on every input kind and size", T,
                   float, double) {
  gc::cuda::float_code_vector<T> out;
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 43);
      for (const std::uint64_t step : {std::uint64_t{0}, std::uint64_t{5}, d}) {
        CAPTURE(step);
        check_same(gc::natural_compression{.seed = 17, .step = step}, x, out);
      }
    }
  }
  for (const std::vector<T>& x : natural_inputs<T>()) {
    CAPTURE(x.size());
    for (std::uint64_t seed = 0; seed < 8; ++seed) check_same(gc::natural_compression{.seed = seed, .step = 3}, x, out);
  }
}

TEST_CASE_TEMPLATE("natural_compression: NaN, Inf and the top binade give the reference's error, step and out stay", T,
                   float, double) {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  const T top = std::numeric_limits<T>::max();
  for (const T bad : {nan, -nan, inf, -inf}) {
    // A top-binade entry first, the non-finite one later: the non-finite one is named.
    std::vector<T> x(5000, T(0.25));
    x[1] = top;
    x[4097] = bad;
    check_rejected(gc::natural_compression{.seed = 1, .step = 6}, x, "x[4097]");
  }
  const T top_power = std::ldexp(T(1), std::numeric_limits<T>::max_exponent - 1);
  for (const T bad : {top, -top, std::nextafter(top_power, inf)}) {
    std::vector<T> x(300, T(0.5));
    x[257] = bad;
    check_rejected(gc::natural_compression{.step = 2}, x, "x[257]");
  }
}

TEST_CASE_TEMPLATE("maxmin_quantizer: exec::seq's (min, unit) and levels on every input kind, size, width, bucket size",
                   T, float, double) {
  gc::cuda::bucket_quantized_vector<T> out;  // reused across calls
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      std::vector<T> x = gt::make_input<T>(kind, d, d + 47);
      for (std::size_t i = 5; i < d; i += 97) x[i] = -x[i];  // -0 among +0
      const bool large = d > 65537;
      for (const std::uint32_t bits : {1u, 4u, 8u}) {
        if (large && bits != 8) continue;  // the same kernels; the host reference is the slow part
        for (const std::size_t b : bucket_sizes(d)) {
          if (large && (b == 1 || b == 33 || b == 1000)) continue;
          CAPTURE(bits);
          CAPTURE(b);
          check_same(gc::maxmin_quantizer{.bits = bits, .bucket_size = b, .seed = 7, .step = d + b}, x, out);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("maxmin_quantizer: adversarial buckets (zeros of both signs, constants, extremes, denormals)", T,
                   float, double) {
  gc::cuda::bucket_quantized_vector<T> out;
  const T top = std::numeric_limits<T>::max(), dm = std::numeric_limits<T>::denorm_min();
  const std::vector<std::vector<T>> inputs{
      {T(1), T(4), T(-2), T(-2), T(5)},
      {-T(0), T(0), -T(0)},
      {T(0), -T(0), T(0), -T(0), T(1), -T(0)},
      {T(0.4) * top, T(-0.4) * top, T(0.1) * top, T(0)},
      {top, T(0), top},
      {top, top, -top, -top},
      {dm, -dm, T(3) * dm, T(0), -T(0), T(1000) * dm},
      {std::numeric_limits<T>::min(), -std::numeric_limits<T>::min(), T(1)},
  };
  for (const std::vector<T>& x : inputs) {
    CAPTURE(x.size());
    for (const std::uint32_t bits : {1u, 2u, 3u, 8u})
      for (const std::size_t b : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{1024}})
        check_same(gc::maxmin_quantizer{.bits = bits, .bucket_size = b, .seed = 9}, x, out);
  }
  // Buckets that start inside a warp tile and span several tiles; zeros of both signs at
  // bucket edges.
  std::vector<T> x = gt::make_input<T>(gt::input_kind::with_zeros, 100003, 3);
  for (std::size_t i = 0; i < x.size(); i += 1500) x[i] = -T(0);
  for (const std::size_t b : {std::size_t{1500}, std::size_t{2047}, std::size_t{2049}, std::size_t{31}})
    check_same(gc::maxmin_quantizer{.bits = 5, .bucket_size = b, .seed = 2}, x, out);
}

TEST_CASE_TEMPLATE("maxmin_quantizer: the reference's errors (parameters, non-finite input, overflow), out and step stay",
                   T, float, double) {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, 20, 81);
  for (const std::uint32_t bits : {0u, 9u, 32u}) check_rejected(gc::maxmin_quantizer{.bits = bits, .step = 2}, x, "bits");
  check_rejected(gc::maxmin_quantizer{.bucket_size = 0, .step = 2}, x, "bucket_size");
  for (const std::size_t d : {std::size_t{1}, std::size_t{65}, std::size_t{4097}, std::size_t{70001}}) {
    for (const T bad : {nan, -nan, inf, -inf}) {
      for (const std::size_t where : {std::size_t{0}, d / 2, d - 1}) {
        CAPTURE(d);
        CAPTURE(where);
        std::vector<T> y = gt::make_input<T>(gt::input_kind::normal, d, 71 + where);
        y[where] = bad;
        if (where + 1 < d) y[d - 1] = -bad;  // a later one is not named
        check_rejected(gc::maxmin_quantizer{.bits = 3, .bucket_size = 16, .seed = 5, .step = 8}, y,
                       "x[" + std::to_string(where) + "]");
      }
    }
  }
  const T top = std::numeric_limits<T>::max();
  for (const std::uint32_t bits : {1u, 4u, 8u}) {
    check_rejected(gc::maxmin_quantizer{.bits = bits, .seed = 1, .step = 3}, std::vector<T>{T(0.75) * top, T(-0.75) * top},
                   "bucket 0");
    check_rejected(gc::maxmin_quantizer{.bits = bits, .bucket_size = 2, .step = 1},
                   std::vector<T>{T(1), T(2), -top, top, T(5)}, "bucket 1 (x[2] to x[3])");
  }
}

TEST_CASE_TEMPLATE("float codes and maxmin: decompress_add adds the decoded values with the reference's roundings", T,
                   float, double) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{4097}, std::size_t{1000003}}) {
    CAPTURE(d);
    const std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 4);
    gc::float_code_vector<T> m;
    gc::compress(gc::exec::seq, gc::float16_cast{}, x, m);
    check_decompress_add<T, gc::float_code_vector<T>, gc::cuda::float_code_vector<T>>(m, d);
    gc::compress(gc::exec::seq, gc::bfloat16_cast{.pre_scale = false}, x, m);
    check_decompress_add<T, gc::float_code_vector<T>, gc::cuda::float_code_vector<T>>(m, d);
    gc::natural_compression natural{.seed = 3};
    gc::compress(gc::exec::seq, natural, x, m);
    check_decompress_add<T, gc::float_code_vector<T>, gc::cuda::float_code_vector<T>>(m, d);
    gc::bucket_quantized_vector<T> q;
    gc::maxmin_quantizer maxmin{.bits = 5, .bucket_size = 333, .seed = 4};
    gc::compress(gc::exec::seq, maxmin, x, q);
    check_decompress_add<T, gc::bucket_quantized_vector<T>, gc::cuda::bucket_quantized_vector<T>>(q, d);
  }
}

TEST_CASE("float codes and maxmin: error feedback on the device gives the host's steps") {
  for (const std::size_t d : {std::size_t{1}, std::size_t{4097}, std::size_t{300001}}) {
    CAPTURE(d);
    check_feedback_steps(gc::float16_cast{}, d, 0.5f);
    check_feedback_steps(gc::float16_cast{.pre_scale = false}, d, 1.0f);
    check_feedback_steps(gc::bfloat16_cast{}, d, 0.5f);
    check_feedback_steps(gc::natural_compression{.seed = 21}, d, 0.5f);
    check_feedback_steps(gc::maxmin_quantizer{.bits = 4, .bucket_size = 512, .seed = 22}, d, 0.5f);
    check_feedback_steps(gc::maxmin_quantizer{.bits = 8, .bucket_size = 100000, .seed = 23}, d, 1.0f);
    check_feedback_steps<gc::bfloat16_cast, gc::bfloat16>(gc::bfloat16_cast{}, d, 1.0f);
    check_feedback_steps<gc::natural_compression, gc::float16>(gc::natural_compression{.seed = 24}, d, 1.0f);
    check_feedback_steps<gc::maxmin_quantizer, gc::bfloat16>(gc::maxmin_quantizer{.bits = 2, .seed = 25}, d, 1.0f);
  }
}

TEST_CASE("float codes and maxmin: a rejected error-feedback step changes nothing, undo puts the step back") {
  const std::size_t d = 5000;
  std::vector<float> g = gt::make_input<float>(gt::input_kind::normal, d, 1);
  const device_copy<float> dg(g);
  g[7] = std::numeric_limits<float>::quiet_NaN();
  const device_copy<float> bad(g);
  const auto check = [&](auto c) {
    gc::cuda::error_feedback<decltype(c), float> ef(c, d);
    ef.compress(gc::cuda::par, dg.span());
    const std::vector<float> before = to_host(ef.error());
    const auto metrics = ef.metrics();
    const auto step = ef.base();
    CHECK_THROWS_AS(ef.compress(gc::cuda::par, bad.span()), gc::error);
    CHECK(gt::same_bits(to_host(ef.error()), before));
    CHECK(ef.metrics().steps == metrics.steps);
    if constexpr (gc::seeded_compressor<decltype(c)>) CHECK(ef.base().step == step.step);
    ef.compress(gc::cuda::par, dg.span());
    ef.undo();
    CHECK(gt::same_bits(to_host(ef.error()), before));
    if constexpr (gc::seeded_compressor<decltype(c)>) CHECK(ef.base().step == step.step);
  };
  check(gc::float16_cast{});
  check(gc::natural_compression{.seed = 2});
  check(gc::maxmin_quantizer{.bits = 3, .bucket_size = 64, .seed = 2});
}

TEST_CASE_TEMPLATE("maxmin_quantizer: the extremes' order key orders T's values and inverts exactly", T, float,
                   double) {
  namespace cdt = gc::cuda::detail;
  const T inf = std::numeric_limits<T>::infinity();
  const std::vector<T> ordered{-inf, -std::numeric_limits<T>::max(), T(-1), -std::numeric_limits<T>::min(),
                               -std::numeric_limits<T>::denorm_min(), -T(0), T(0),
                               std::numeric_limits<T>::denorm_min(), std::numeric_limits<T>::min(), T(1),
                               std::numeric_limits<T>::max(), inf};
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    CAPTURE(i);
    CHECK(gt::bits(cdt::from_order_key<T>(cdt::order_key(ordered[i]))) == gt::bits(ordered[i]));
    if (i > 0) CHECK(cdt::order_key(ordered[i - 1]) < cdt::order_key(ordered[i]));
  }
  const T nan = std::numeric_limits<T>::quiet_NaN();
  CHECK(cdt::order_key(nan) > cdt::order_key(inf));
  CHECK(cdt::order_key(-nan) < cdt::order_key(-inf));
}
