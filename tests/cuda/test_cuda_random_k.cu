// random_k and unbiased_random_k on the CUDA back end against exec::seq, bit for bit: the
// index set (the k smallest hashes at (seed, step)), the values (with unbiased_random_k's
// overflow rule), the step that advances, the wire bytes, and decompress_add.
#include "cuda_support.cuh"

#include <limits>

using namespace gradcomp_cuda_test;

namespace {

template <class C, class T>
void check_random_k(std::uint64_t seed, std::uint64_t step) {
  gc::cuda::seeded_sparse_vector<T> out;  // reused across calls
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : {gt::input_kind::normal, gt::input_kind::with_zeros, gt::input_kind::heavy_tailed}) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      std::vector<T> x = gt::make_input<T>(kind, d, d + seed);
      if (d % 2 == 1) place_specials(x, d);
      const device_copy<T> dx(x);
      for (const std::size_t k : {std::size_t{1}, std::size_t{2}, std::size_t{17}, d / 100 + 1, d / 3 + 1,
                                  d > 1 ? d - 1 : 1, d > 0 ? d : 1, d + 5}) {
        CAPTURE(k);
        C host{.k = k, .seed = seed, .step = step};
        C device = host;
        gc::seeded_sparse_vector<T> want;
        gc::compress(gc::exec::seq, host, x, want);
        gc::compress(gc::cuda::par, device, dx.span(), out);
        CHECK(device.step == host.step);
        const gc::seeded_sparse_vector<T> got = out.to_host();
        CHECK(got.dim == want.dim);
        CHECK(got.seed == want.seed);
        CHECK(got.step == want.step);
        REQUIRE(got.indices == want.indices);
        REQUIRE(gt::same_bits(got.values, want.values));
        CHECK(out.encode() == gc::encode(want));
      }
    }
  }
}

}  // namespace

TEST_CASE_TEMPLATE("random_k: exec::seq's indices, values and step", T, float, double) {
  check_random_k<gc::random_k, T>(0, 0);
  check_random_k<gc::random_k, T>(42, 12345);
  check_random_k<gc::unbiased_random_k, T>(7, 3);
}

TEST_CASE("unbiased_random_k: a finite value whose scaled value overflows is sent as +-max, as on the host") {
  const std::size_t d = 1000;
  std::vector<float> x(d, std::numeric_limits<float>::max() / 2);
  for (std::size_t i = 0; i < d; i += 2) x[i] = -x[i];
  x[3] = std::numeric_limits<float>::infinity();
  const device_copy<float> dx(x);
  gc::unbiased_random_k host{.k = 10, .seed = 1}, device = host;
  gc::seeded_sparse_vector<float> want;
  gc::compress(gc::exec::seq, host, x, want);
  gc::cuda::seeded_sparse_vector<float> out;
  gc::compress(gc::cuda::par, device, dx.span(), out);
  const auto got = out.to_host();
  REQUIRE(got.indices == want.indices);
  REQUIRE(gt::same_bits(got.values, want.values));
  for (const float v : got.values) CHECK(std::fabs(v) == std::numeric_limits<float>::max());
}

TEST_CASE_TEMPLATE("random_k: decompress_add adds the reference's values at the regenerated indices", T, float, double) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{4097}, std::size_t{1000003}}) {
    CAPTURE(d);
    gc::random_k c{.k = d / 7 + 1, .seed = 9};
    gc::cuda::seeded_sparse_vector<T> dm;
    const device_copy<T> dx(gt::make_input<T>(gt::input_kind::heavy_tailed, d, 4));
    gc::compress(gc::cuda::par, c, dx.span(), dm);
    check_decompress_add<T, gc::seeded_sparse_vector<T>, gc::cuda::seeded_sparse_vector<T>>(dm.to_host(), d);
  }
}

TEST_CASE("random_k: a bad k or a too narrow index type is the reference's gc::error, and the step stays") {
  const device_copy<float> dx(std::vector<float>(300, 1.0f));
  gc::random_k c{.k = 0, .seed = 1, .step = 5};
  gc::cuda::seeded_sparse_vector<float> out;
  CHECK_THROWS_WITH_AS(gc::compress(gc::cuda::par, c, dx.span(), out), doctest::Contains("k must be >= 1"), gc::error);
  CHECK(c.step == 5);
  gc::cuda::seeded_sparse_vector<float, std::uint8_t> narrow;
  c.k = 3;
  CHECK_THROWS_AS(gc::compress(gc::cuda::par, c, dx.span(), narrow), gc::error);
  CHECK(c.step == 5);
}
