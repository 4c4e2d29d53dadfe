// sign, scaled_sign and blockwise_sign on the CUDA back end against exec::seq, bit for bit: the
// scales (the reference tree per block, and the rescue of a double sum that overflows), the
// sign bits (-0 and NaN positive, bits past dim zero), the wire bytes, decompress_add, and the
// error-feedback steps.
#include "cuda_support.cuh"

#include <limits>

using namespace gradcomp_cuda_test;

namespace {

template <class T, class C>
void check_sign(const C& c, const std::vector<T>& x, gc::cuda::sign_vector<T>& out) {
  gc::sign_vector<T> want;
  gc::compress(gc::exec::seq, c, x, want);
  const device_copy<T> dx(x);
  gc::compress(gc::cuda::par, c, dx.span(), out);
  const gc::sign_vector<T> got = out.to_host();
  REQUIRE(got.dim == want.dim);
  REQUIRE(got.block_size == want.block_size);
  REQUIRE(gt::same_bits(got.scales, want.scales));
  REQUIRE(got.negative == want.negative);
  CHECK(out.encode() == gc::encode(want));
}

/// Block sizes: one element, odd, a word, a reduction block and just over it, longer than
/// one, the whole vector, beyond it, and beyond any vector.
std::vector<std::size_t> block_sizes(std::size_t d) {
  std::vector<std::size_t> b{1, 7, 64, 256, 4096, 4097, 70000, d + 1, SIZE_MAX};
  if (d > 0) b.push_back(d);
  return b;
}

}  // namespace

TEST_CASE_TEMPLATE("sign compressors: exec::seq's scales and bits on every input kind, size and block size", T, float,
                   double) {
  gc::cuda::sign_vector<T> out;  // reused across calls
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      std::vector<T> x = gt::make_input<T>(kind, d, d + 23);
      if (d % 2 == 0) place_specials(x, d + 3);
      check_sign(gc::scaled_sign{}, x, out);
      check_sign(gc::sign{}, x, out);
      for (const std::size_t b : block_sizes(d)) {
        if (b == 1 && d > 70000) continue;  // one CUDA block per element: slow, and the same code as b = 7
        CAPTURE(b);
        check_sign(gc::blockwise_sign{.block_size = b}, x, out);
      }
    }
  }
}

TEST_CASE("sign compressors: a double block whose |x| sum overflows gets the reference's rescued mean") {
  const std::size_t d = 20000;
  std::vector<double> x(d, 1e306);
  for (std::size_t i = 0; i < d; i += 3) x[i] = -x[i];
  x[5] = 0.0;
  gc::cuda::sign_vector<double> out;
  check_sign(gc::scaled_sign{}, x, out);
  check_sign(gc::blockwise_sign{.block_size = 5000}, x, out);
  check_sign(gc::blockwise_sign{.block_size = 300}, x, out);
  const auto got = out.to_host();
  for (const double s : got.scales) CHECK(std::isfinite(s));
  x[7] = std::numeric_limits<double>::infinity();  // an Inf in the input: the scale is Inf, as on the host
  check_sign(gc::blockwise_sign{.block_size = 5000}, x, out);
}

TEST_CASE_TEMPLATE("sign compressors: decompress_add adds signed scales with the reference's roundings", T, float,
                   double) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{4097}, std::size_t{1000003}}) {
    CAPTURE(d);
    gc::sign_vector<T> m;
    gc::compress(gc::exec::seq, gc::blockwise_sign{.block_size = 100}, gt::make_input<T>(gt::input_kind::heavy_tailed, d, 4),
                 m);
    check_decompress_add<T, gc::sign_vector<T>, gc::cuda::sign_vector<T>>(m, d);
  }
}

TEST_CASE("sign compressors: error feedback on the device gives the host's steps") {
  const std::size_t d = 300001;
  check_feedback_steps(gc::scaled_sign{}, d, 0.5f);
  check_feedback_steps(gc::sign{}, d, 0.5f);
  check_feedback_steps(gc::blockwise_sign{.block_size = 256}, d, 0.5f);
  check_feedback_steps<gc::blockwise_sign, gc::bfloat16>(gc::blockwise_sign{.block_size = 5000}, d, 1.0f);
}

TEST_CASE("sign compressors: block_size 0 is the reference's gc::error") {
  const device_copy<float> dx(std::vector<float>(10, 1.0f));
  gc::cuda::sign_vector<float> out;
  CHECK_THROWS_WITH_AS(gc::compress(gc::cuda::par, gc::blockwise_sign{.block_size = 0}, dx.span(), out),
                       doctest::Contains("block_size must be >= 1"), gc::error);
}

// ---- onebit ----
// onebit (two_level_vector) on the CUDA back end against exec::seq, bit for bit: the lows and highs (three
// reference trees per block, the empty groups, the rescue of a double group sum that
// overflows), the bits (-0 and NaN non-negative, bits past dim zero), the wire bytes,
// decompress_add, and the error-feedback steps.
// (block_sizes above: onebit::whole is SIZE_MAX.)
namespace {

template <class T>
void check_onebit(const gc::onebit& c, const std::vector<T>& x, gc::cuda::two_level_vector<T>& out) {
  gc::two_level_vector<T> want;
  gc::compress(gc::exec::seq, c, x, want);
  const device_copy<T> dx(x);
  gc::compress(gc::cuda::par, c, dx.span(), out);
  const gc::two_level_vector<T> got = out.to_host();
  REQUIRE(got.dim == want.dim);
  REQUIRE(got.block_size == want.block_size);
  REQUIRE(gt::same_result(got.lows, want.lows));  // computed: NaN payloads may differ
  REQUIRE(gt::same_result(got.highs, want.highs));
  REQUIRE(got.negative == want.negative);
  CHECK(gc::wire_bytes(got) == out.wire_bytes());
}

}  // namespace

TEST_CASE_TEMPLATE("onebit: exec::seq's lows, highs and bits on every input kind, size and block size", T, float,
                   double) {
  gc::cuda::two_level_vector<T> out;  // reused across calls
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      std::vector<T> x = gt::make_input<T>(kind, d, d + 29);
      if (d % 2 == 0) place_specials(x, d + 5);
      for (const std::size_t b : block_sizes(d)) {
        if (b == 1 && d > 70000) continue;  // one CUDA block per element: slow, and the same code as b = 7
        CAPTURE(b);
        check_onebit(gc::onebit{.block_size = b}, x, out);
      }
    }
  }
}

TEST_CASE_TEMPLATE("onebit: blocks with one group empty send 0 for it", T, float, double) {
  gc::cuda::two_level_vector<T> out;
  for (const std::size_t d : {std::size_t{5}, std::size_t{4097}, std::size_t{70001}}) {
    CAPTURE(d);
    std::vector<T> positive(d), negative(d);
    for (std::size_t i = 0; i < d; ++i) {
      positive[i] = i % 3 == 0 ? -T(0) : T(1) + T(i % 7);
      negative[i] = -T(1) - T(i % 5);
    }
    for (const std::size_t b : {std::size_t{3}, std::size_t{5000}, gc::onebit::whole}) {
      check_onebit(gc::onebit{.block_size = b}, positive, out);
      check_onebit(gc::onebit{.block_size = b}, negative, out);
    }
  }
}

TEST_CASE("onebit: a double group whose |x| sum overflows gets the reference's rescued mean") {
  const std::size_t d = 20000;
  std::vector<double> x(d, 1e306);
  for (std::size_t i = 0; i < d; i += 3) x[i] = -x[i];
  x[5] = 0.0;
  gc::cuda::two_level_vector<double> out;
  for (const std::size_t b : {gc::onebit::whole, std::size_t{5000}, std::size_t{300}}) {
    check_onebit(gc::onebit{.block_size = b}, x, out);
    const auto got = out.to_host();
    for (const double v : got.lows) CHECK(std::isfinite(v));
    for (const double v : got.highs) CHECK(std::isfinite(v));
  }
  x[7] = std::numeric_limits<double>::infinity();  // an Inf in the input: that group's mean is Inf, as on the host
  check_onebit(gc::onebit{.block_size = 5000}, x, out);
  x[8] = -std::numeric_limits<double>::infinity();
  check_onebit(gc::onebit{}, x, out);
}

TEST_CASE_TEMPLATE("onebit: decompress_add adds lows and highs with the reference's roundings", T, float, double) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{4097}, std::size_t{1000003}}) {
    CAPTURE(d);
    gc::two_level_vector<T> m;
    const std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 6);
    gc::compress(gc::exec::seq, gc::onebit{.block_size = 100}, x, m);
    check_decompress_add<T, gc::two_level_vector<T>, gc::cuda::two_level_vector<T>>(m, d);
  }
}

TEST_CASE("onebit: error feedback on the device gives the host's steps") {
  const std::size_t d = 300001;
  check_feedback_steps(gc::onebit{}, d, 0.5f);
  check_feedback_steps(gc::onebit{.block_size = 256}, d, 0.5f);
  check_feedback_steps<gc::onebit, gc::bfloat16>(gc::onebit{.block_size = 5000}, d, 1.0f);
}

TEST_CASE("onebit: block_size 0 is the reference's gc::error") {
  const device_copy<float> dx(std::vector<float>(10, 1.0f));
  gc::cuda::two_level_vector<float> out;
  CHECK_THROWS_WITH_AS(gc::compress(gc::cuda::par, gc::onebit{.block_size = 0}, dx.span(), out),
                       doctest::Contains("block_size must be >= 1"), gc::error);
}
