// gc::cuda::error_feedback against gc::error_feedback on exec::seq: the same messages, the
// same residual bits and the same ||e||^2, for float32 and 16-bit gradients; rejected steps
// leave the state unchanged.
#include "cuda_support.cuh"

using namespace gradcomp_cuda_test;

namespace {

template <class C, class G>
void check_steps(const C& c, std::size_t d, float scale) {
  gc::error_feedback<C, float> host(c, d);
  gc::cuda::error_feedback<C, float> device(c, d);
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    const std::vector<float> base = gt::make_input<float>(gt::input_kind::heavy_tailed, d, 100 * step + d);
    std::vector<G> g(d);
    for (std::size_t i = 0; i < d; ++i) {
      if constexpr (std::is_same_v<G, float>)
        g[i] = base[i];
      else
        g[i] = gc::to_half<G>(base[i]);
    }
    const auto& want = host.compress(gc::exec::seq, std::span<const G>(g), scale);
    const device_copy<G> dg(g);
    const auto& got = device.compress(gc::cuda::par, dg.span(), scale);
    REQUIRE(got.encode() == gc::encode(want));
    REQUIRE(gt::same_bits(to_host(device.error()), std::vector<float>(host.error().begin(), host.error().end())));
    CHECK(device.metrics().total_error == host.metrics().total_error);
    CHECK(device.metrics().wire_bytes == host.metrics().wire_bytes);
    CHECK(device.metrics().elements_sent == host.metrics().elements_sent);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("error_feedback: exec::seq's messages, residuals and errors", G, float, gc::bfloat16,
                   gc::float16) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{4097}, std::size_t{300001}}) {
    CAPTURE(d);
    check_steps<gc::top_k, G>(gc::top_k{.k = d / 100 + 1}, d, 1.0f);
    check_steps<gc::top_k, G>(gc::top_k{.k = d / 3 + 1}, d, 0.1f);
    check_steps<gc::hard_threshold, G>(gc::hard_threshold{.lambda = 1.5}, d, 1.0f);
    check_steps<gc::hard_threshold, G>(gc::hard_threshold{.lambda = 0.05}, d, 0.25f);
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
