// gc::cuda::error_feedback against gc::error_feedback on exec::seq: the same messages, the
// same residual bits and the same ||e||^2, for float32 and 16-bit gradients; rejected steps
// leave the state unchanged.
#include "cuda_support.cuh"

#include <bit>

using namespace gradcomp_cuda_test;


TEST_CASE_TEMPLATE("error_feedback: exec::seq's messages, residuals and errors", G, float, gc::bfloat16,
                   gc::float16) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{4097}, std::size_t{300001}}) {
    CAPTURE(d);
    check_feedback_steps<gc::top_k, G>(gc::top_k{.k = d / 100 + 1}, d, 1.0f);
    check_feedback_steps<gc::top_k, G>(gc::top_k{.k = d / 3 + 1}, d, 0.1f);
    check_feedback_steps<gc::hard_threshold, G>(gc::hard_threshold{.lambda = 1.5}, d, 1.0f);
    check_feedback_steps<gc::hard_threshold, G>(gc::hard_threshold{.lambda = 0.05}, d, 0.25f);
    check_feedback_steps<gc::hard_threshold, G>(gc::hard_threshold{.lambda = 0.0}, d, 1.0f);  // everything sent
    check_feedback_steps<gc::random_k, G>(gc::random_k{.k = d / 10 + 1, .seed = 3}, d, 1.0f);
    check_feedback_steps<gc::unbiased_random_k, G>(gc::unbiased_random_k{.k = d / 10 + 1, .seed = 4}, d, 0.5f);
  }
}

TEST_CASE("error_feedback: a non-finite gradient is rejected, the state unchanged, undo works") {
  const std::size_t d = 5000;
  gc::cuda::error_feedback<gc::top_k, float> ef(gc::top_k{.k = 10}, d);
  std::vector<float> g = gt::make_input<float>(gt::input_kind::normal, d, 1);
  device_copy<float> dg(g);
  ef.compress(gc::cuda::par, dg.span());
  const std::vector<float> before = to_host(ef.error());
  const auto metrics = ef.metrics();
  g[1234] = std::numeric_limits<float>::infinity();
  device_copy<float> bad(g);
  CHECK_THROWS_WITH_AS(ef.compress(gc::cuda::par, bad.span()), doctest::Contains("x[1234] = inf is not finite"),
                       gc::error);
  CHECK(gt::same_bits(to_host(ef.error()), before));
  CHECK(ef.metrics().steps == metrics.steps);
  CHECK_THROWS_WITH_AS(ef.compress(gc::cuda::par, dg.span(), std::numeric_limits<float>::quiet_NaN()),
                       doctest::Contains("scale must be finite"), gc::error);
  ef.compress(gc::cuda::par, dg.span());
  ef.undo();
  CHECK(gt::same_bits(to_host(ef.error()), before));
  CHECK_THROWS_AS(ef.undo(), gc::error);
  // A rejected step leaves nothing to undo (its attempt overwrote the other buffer).
  ef.compress(gc::cuda::par, dg.span());
  CHECK_THROWS_AS(ef.compress(gc::cuda::par, bad.span()), gc::error);
  CHECK_THROWS_AS(ef.undo(), gc::error);
}

TEST_CASE("error_feedback<random_k>: a rejected step and undo put the compressor's step back, as on the host") {
  const std::size_t d = 5000;
  gc::cuda::error_feedback<gc::random_k, float> ef(gc::random_k{.k = 50, .seed = 2}, d);
  std::vector<float> g = gt::make_input<float>(gt::input_kind::normal, d, 1);
  const device_copy<float> dg(g);
  ef.compress(gc::cuda::par, dg.span());
  CHECK(ef.base().step == 1);
  g[7] = std::numeric_limits<float>::quiet_NaN();
  const device_copy<float> bad(g);
  CHECK_THROWS_AS(ef.compress(gc::cuda::par, bad.span()), gc::error);
  CHECK(ef.base().step == 1);
  ef.compress(gc::cuda::par, dg.span());
  CHECK(ef.base().step == 2);
  ef.undo();
  CHECK(ef.base().step == 1);
}

TEST_CASE("error_feedback: a finite residual whose squared norm overflows a double is accepted, as on the host") {
  const std::size_t d = 10;
  const std::vector<double> g(d, 1e200);  // every square overflows; no entry is sent, none is infinite
  gc::error_feedback<gc::hard_threshold, double> host(gc::hard_threshold{.lambda = 1e300}, d);
  gc::cuda::error_feedback<gc::hard_threshold, double> device(gc::hard_threshold{.lambda = 1e300}, d);
  host.compress(gc::exec::seq, std::span<const double>(g));
  const device_copy<double> dg(g);
  device.compress(gc::cuda::par, dg.span());
  CHECK(std::isinf(host.metrics().total_error));
  CHECK(std::isinf(device.metrics().total_error));
  CHECK(device.metrics().steps == 1);
  CHECK(gt::same_bits(to_host(device.error()), std::vector<double>(host.error().begin(), host.error().end())));
}

TEST_CASE_TEMPLATE("feedback_step_async: the fused hard-threshold pass gives the composition's and exec::seq's bits", T,
                   float, double) {
  namespace cdt = gc::cuda::detail;
  gc::cuda::device_buffer<double> errors(2);
  gc::cuda::sparse_vector<T> fused, composed;
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      std::vector<T> e = gt::make_input<T>(kind, d, d + 5);
      const std::vector<T> g = gt::make_input<T>(gt::input_kind::heavy_tailed, d, d + 6);
      const bool specials = d % 2 == 1;
      if (specials) place_specials(e, d);
      const device_copy<T> de(e), dg(g);
      device_copy<T> fused_e(d), composed_e(d);
      for (const double lambda : {0.0, 1e-39, 0.5, 1.5, 1e300}) {
        CAPTURE(lambda);
        const gc::hard_threshold c{.lambda = lambda};
        const T scale = T(0.5);
        cdt::feedback_step_async(gc::cuda::par, c, de.span(), dg.span(), scale, fused_e.span(), fused, errors.data());
        cdt::composed_feedback_step_async(gc::cuda::par, c, de.span(), dg.span(), scale, composed_e.span(), composed,
                                          errors.data() + 1);
        const gc::sparse_vector<T> a = fused.to_host(), b = composed.to_host();
        REQUIRE(a.dim == b.dim);
        REQUIRE(a.indices == b.indices);
        REQUIRE(gt::same_bits(a.values, b.values));
        REQUIRE(gt::same_bits(fused_e.to_host(), composed_e.to_host()));
        const std::vector<double> err = to_host(std::span<const double>(errors.data(), 2));
        CHECK(std::bit_cast<std::uint64_t>(err[0]) == std::bit_cast<std::uint64_t>(err[1]));
        if (!specials) {  // the host reference (NaN payloads may differ between CPU and GPU)
          std::vector<T> p(d);
          gc::detail::feedback_input(std::span<const T>(e), std::span<const T>(g), scale, std::span<T>(p));
          gc::sparse_vector<T> m;
          gc::compress(gc::exec::seq, c, p, m);
          m.decompress_add(std::span<T>(p), T(-1));
          REQUIRE(a.indices == m.indices);
          REQUIRE(gt::same_bits(a.values, m.values));
          REQUIRE(gt::same_bits(fused_e.to_host(), p));
          CHECK(std::bit_cast<std::uint64_t>(err[0]) ==
                std::bit_cast<std::uint64_t>(gc::detail::squared_norm(std::span<const T>(p))));
        }
      }
    }
  }
}

TEST_CASE("error_feedback: assign_error replaces the residual, as on the host, and rejects what the host rejects") {
  const std::size_t d = 3000;
  gc::error_feedback<gc::top_k, float> host(gc::top_k{.k = 30}, d);
  gc::cuda::error_feedback<gc::top_k, float> device(gc::top_k{.k = 30}, d);
  const std::vector<float> e = gt::make_input<float>(gt::input_kind::normal, d, 4);
  const device_copy<float> de(e);
  host.assign_error(e);
  device.assign_error(gc::cuda::par, de.span());
  CHECK(gt::same_bits(to_host(device.error()), e));
  const std::vector<float> g = gt::make_input<float>(gt::input_kind::heavy_tailed, d, 5);
  const device_copy<float> dg(g);
  const auto& want = host.compress(gc::exec::seq, std::span<const float>(g));
  const auto& got = device.compress(gc::cuda::par, dg.span());
  CHECK(got.encode() == gc::encode(want));
  CHECK(gt::same_bits(to_host(device.error()), std::vector<float>(host.error().begin(), host.error().end())));
  std::vector<float> bad = e;
  bad[17] = std::numeric_limits<float>::infinity();
  const device_copy<float> dbad(bad);
  const std::vector<float> before = to_host(device.error());
  CHECK_THROWS_WITH_AS(device.assign_error(gc::cuda::par, dbad.span()), doctest::Contains("e[17] = inf is not finite"),
                       gc::error);
  CHECK(gt::same_bits(to_host(device.error()), before));
  const device_copy<float> short_e(std::vector<float>(5, 0.0f));
  CHECK_THROWS_AS(device.assign_error(gc::cuda::par, short_e.span()), gc::error);
}
