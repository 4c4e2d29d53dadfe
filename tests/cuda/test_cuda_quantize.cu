// qsgd, terngrad, grid_rounding and dithering on the CUDA back end against exec::seq, bit for bit: the levels (the
// same counter stream), the scale (the reference's norm, with its rescue for double sums of
// squares that under- or overflow), level_bits, the step, the wire bytes, the errors (input
// the reference rejects is rejected with its message, out and step unchanged),
// decompress_add, and the error-feedback steps.
#include "cuda_support.cuh"

#include <limits>

using namespace gradcomp_cuda_test;

namespace {

template <class T, class C>
void check_quantizer(C c, const std::vector<T>& x, gc::cuda::quantized_vector<T>& out) {
  C host = c, device = c;
  gc::quantized_vector<T> want;
  gc::compress(gc::exec::seq, host, x, want);
  const device_copy<T> dx(x);
  gc::compress(gc::cuda::par, device, dx.span(), out);
  CHECK(device.step == host.step);
  const gc::quantized_vector<T> got = out.to_host();
  REQUIRE(got.dim == want.dim);
  REQUIRE(std::bit_cast<gc::detail::uint_of<T>>(got.scale) == std::bit_cast<gc::detail::uint_of<T>>(want.scale));
  REQUIRE(got.level_bits == want.level_bits);
  REQUIRE(got.coding == want.coding);
  REQUIRE(got.levels == want.levels);
  CHECK(out.encode() == gc::encode(want));
}

/// The reference's error on the host and on the device; out and the step stay.
template <class T, class C>
void check_rejected(C c, const std::vector<T>& x, const char* word) {
  const std::uint64_t step = c.step;
  gc::quantized_vector<T> host_out;
  CHECK_THROWS_WITH_AS(gc::compress(gc::exec::seq, c, x, host_out), doctest::Contains(word), gc::error);
  gc::cuda::quantized_vector<T> out;
  const device_copy<T> before(std::vector<T>{T(1), T(-2)});
  gc::compress(gc::cuda::par, c, before.span(), out);  // a message to keep
  const std::uint64_t after_ok = c.step;
  const auto kept = out.to_host();
  const device_copy<T> dx(x);
  std::string host_message;
  try {
    gc::compress(gc::exec::seq, c, x, host_out);
  } catch (const gc::error& e) {
    host_message = e.what();
  }
  CHECK_THROWS_WITH_AS(gc::compress(gc::cuda::par, c, dx.span(), out), host_message.c_str(), gc::error);
  CHECK(c.step == after_ok);
  CHECK(out.to_host().levels == kept.levels);
  CHECK(after_ok == step + 1);
}

}  // namespace

TEST_CASE_TEMPLATE("qsgd: exec::seq's scale, levels and level_bits on every input kind and size", T, float, double) {
  gc::cuda::quantized_vector<T> out;
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 31);
      for (const std::uint32_t s : {1u, 4u, 255u, 1u << 20}) {
        CAPTURE(s);
        check_quantizer(gc::qsgd{.s = s, .seed = 5, .step = s}, x, out);
      }
    }
  }
}

TEST_CASE_TEMPLATE("terngrad: exec::seq's scale max |x_i| and ternary levels on every input kind and size", T, float,
                   double) {
  gc::cuda::quantized_vector<T> out;
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      check_quantizer(gc::terngrad{.seed = 6, .step = d}, gt::make_input<T>(kind, d, d + 37), out);
    }
  }
  const T big = std::numeric_limits<T>::max();
  check_quantizer(gc::terngrad{.seed = 1}, std::vector<T>{big, -big, T(0), std::numeric_limits<T>::denorm_min()}, out);
  check_quantizer(gc::terngrad{.seed = 1}, std::vector<T>(1000, T(0)), out);
}

TEST_CASE_TEMPLATE("dithering: both partitions and norms give exec::seq's message on every input kind and size", T,
                   float, double) {
  gc::cuda::quantized_vector<T> out;
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 41);
      for (const auto p : {gc::dithering::linear, gc::dithering::natural})
        for (const auto n : {gc::dithering::max, gc::dithering::l2})
          for (const std::uint32_t s : {1u, 4u, 30u}) {
            CAPTURE(static_cast<int>(p));
            CAPTURE(static_cast<int>(n));
            CAPTURE(s);
            check_quantizer(gc::dithering{.s = s, .partition = p, .norm = n, .seed = 9, .step = d}, x, out);
          }
    }
  }
  // Levels of both codings into one reused message: the coding is replaced too.
  const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, 5000, 1);
  check_quantizer(gc::dithering{.s = 8, .partition = gc::dithering::natural, .seed = 1}, x, out);
  check_quantizer(gc::dithering{.s = 8, .seed = 1}, x, out);
  check_quantizer(gc::dithering{.s = 8, .partition = gc::dithering::natural, .norm = gc::dithering::l2}, x, out);
}

TEST_CASE("qsgd: double norms that under- or overflow get the reference's rescue") {
  gc::cuda::quantized_vector<double> out;
  std::vector<double> tiny(10000, 1e-200);
  tiny[3] = -3e-201;
  check_quantizer(gc::qsgd{.s = 16, .seed = 1}, tiny, out);
  std::vector<double> huge(10000, 1e300);
  huge[5] = -2e300;
  check_quantizer(gc::qsgd{.s = 1u << 20, .seed = 2}, huge, out);
  check_quantizer(gc::qsgd{.s = 3, .seed = 2}, std::vector<double>(100, 0.0), out);
}

TEST_CASE_TEMPLATE("grid_rounding: exec::seq's levels, nearest and stochastic", T, float, double) {
  gc::cuda::quantized_vector<T> out;
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 37);
      for (const double spacing : {1e-3, 0.1, 1.0}) {
        for (const bool stochastic : {false, true}) {
          CAPTURE(spacing);
          CAPTURE(stochastic);
          check_quantizer(gc::grid_rounding{.spacing = spacing, .stochastic = stochastic, .seed = 3}, x, out);
        }
      }
    }
  }
}

TEST_CASE("quantizers: input the reference rejects gives its error, out and the step stay") {
  std::vector<float> nan_at_7(100, 1.0f);
  nan_at_7[7] = std::numeric_limits<float>::quiet_NaN();
  check_rejected(gc::qsgd{.s = 4}, nan_at_7, "x[7]");
  check_rejected(gc::grid_rounding{.spacing = 0.5}, nan_at_7, "x[7]");
  check_rejected(gc::terngrad{.seed = 2}, nan_at_7, "x[7]");
  std::vector<float> out_of_range(100, 1.0f);
  out_of_range[42] = 1e30f;
  check_rejected(gc::grid_rounding{.spacing = 1e-3}, out_of_range, "int32 level range");
  // Two entries at 0.9 max(double): the norm (1.27 max) is rescued, scale = norm / 2 is
  // finite, but level 2 of 0.9 max would decode to 1.27 max: the level check rejects it.
  std::vector<double> near_max(4, 0.0);
  near_max[1] = near_max[2] = std::numeric_limits<double>::max() * 0.9;
  check_rejected(gc::qsgd{.s = 2}, near_max, "can be quantized to level");
  check_rejected(gc::qsgd{.s = 1}, near_max, "overflows the value type");  // the scale itself
  check_rejected(gc::dithering{.s = 2, .partition = gc::dithering::natural}, nan_at_7, "x[7]");
  check_rejected(gc::dithering{.s = 2, .norm = gc::dithering::l2, .seed = 3}, nan_at_7, "x[7]");
  check_rejected(gc::dithering{.s = 2, .partition = gc::dithering::natural, .norm = gc::dithering::l2}, near_max,
                 "can be quantized to level");
}

TEST_CASE_TEMPLATE("quantizers: decompress_add adds scale * level with the reference's roundings", T, float, double) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{4097}, std::size_t{1000003}}) {
    CAPTURE(d);
    gc::qsgd c{.s = 15, .seed = 8};
    gc::quantized_vector<T> m;
    gc::compress(gc::exec::seq, c, gt::make_input<T>(gt::input_kind::heavy_tailed, d, 4), m);
    check_decompress_add<T, gc::quantized_vector<T>, gc::cuda::quantized_vector<T>>(m, d);
  }
}

TEST_CASE("quantizers: error feedback on the device gives the host's steps") {
  const std::size_t d = 300001;
  check_feedback_steps(gc::qsgd{.s = 7, .seed = 11}, d, 0.5f);
  check_feedback_steps(gc::grid_rounding{.spacing = 0.05, .stochastic = true, .seed = 12}, d, 0.5f);
  check_feedback_steps(gc::terngrad{.seed = 14}, d, 0.5f);
  check_feedback_steps(gc::dithering{.s = 6, .partition = gc::dithering::natural, .norm = gc::dithering::l2, .seed = 15},
                       d, 0.5f);
  check_feedback_steps<gc::qsgd, gc::float16>(gc::qsgd{.s = 100, .seed = 13}, d, 1.0f);
}
