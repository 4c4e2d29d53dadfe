// The CUDA back end against exec::seq, bit for bit: squared norms, hard-threshold, Top-k
// (radix select, ties to the lowest indices, NaN above Inf), decompress_add, on random and
// adversarial inputs of many sizes, float and double, 32- and 64-bit indices.
#include "cuda_support.cuh"

using namespace gradcomp_cuda_test;

namespace {

template <class T, class Index, class C>
void check_sparsifier(const C& c, const std::vector<T>& x, gc::cuda::sparse_vector<T, Index>& out) {
  gc::sparse_vector<T, Index> want;
  gc::compress(gc::exec::seq, c, x, want);
  const device_copy<T> dx(x);
  gc::compress(gc::cuda::par, c, dx.span(), out);
  const gc::sparse_vector<T, Index> got = out.to_host();
  REQUIRE(got.indices == want.indices);
  REQUIRE(gt::same_bits(got.values, want.values));
  CHECK(out.encode() == gc::encode(want));
}

}  // namespace

TEST_CASE_TEMPLATE("squared_norm: the reference tree's bits", T, float, double) {
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : {gt::input_kind::normal, gt::input_kind::heavy_tailed, gt::input_kind::denormals}) {
      CAPTURE(d);
      std::vector<T> x = gt::make_input<T>(kind, d, d + 3);
      const device_copy<T> dx(x);
      const double want = gc::detail::squared_norm(std::span<const T>(x));
      const double got = gc::backend::run<gc::backend::squared_norm_hook>(gc::cuda::par, dx.span());
      CHECK(std::bit_cast<std::uint64_t>(got) == std::bit_cast<std::uint64_t>(want));
      if (d > 16) {  // Inf and NaN propagate
        place_specials(x, d);
        const device_copy<T> dy(x);
        CHECK(std::isnan(gc::backend::run<gc::backend::squared_norm_hook>(gc::cuda::par, dy.span())));
      }
    }
  }
}

TEST_CASE_TEMPLATE("hard_threshold: exec::seq's entries on every input kind and size", T, float, double) {
  gc::cuda::sparse_vector<T> out;  // reused across calls, as a trainer does
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      std::vector<T> x = gt::make_input<T>(kind, d, d + 11);
      if (d % 2 == 1) place_specials(x, d);
      for (const double lambda : {0.0, 1e-39, 0.5, 1.0, 1.5, 1e300}) {
        CAPTURE(lambda);
        check_sparsifier(gc::hard_threshold{.lambda = lambda}, x, out);
      }
    }
  }
  SUBCASE("64-bit indices") {
    gc::cuda::sparse_vector<T, std::uint64_t> wide;
    check_sparsifier(gc::hard_threshold{.lambda = 0.7}, gt::make_input<T>(gt::input_kind::normal, 100003, 5), wide);
  }
}

TEST_CASE_TEMPLATE("top_k: exec::seq's entries, ties to the lowest indices, NaN first", T, float, double) {
  gc::cuda::sparse_vector<T> out;
  for (const std::size_t d : sizes()) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      CAPTURE(d);
      CAPTURE(gt::to_string(kind));
      std::vector<T> x = gt::make_input<T>(kind, d, d + 17);
      if (d % 2 == 0) place_specials(x, d + 1);
      for (const std::size_t k : {std::size_t{1}, std::size_t{2}, std::size_t{17}, d / 100 + 1, d / 3 + 1,
                                  d > 1 ? d - 1 : 1, d > 0 ? d : 1, d + 5}) {
        CAPTURE(k);
        check_sparsifier(gc::top_k{.k = k}, x, out);
      }
    }
  }
  SUBCASE("64-bit indices") {
    gc::cuda::sparse_vector<T, std::uint64_t> wide;
    check_sparsifier(gc::top_k{.k = 1000}, gt::make_input<T>(gt::input_kind::ties, 100003, 5), wide);
  }
}

TEST_CASE("top_k: the same entries when replayed from a CUDA graph") {
  const std::size_t d = 1 << 20, k = 1000;
  const std::vector<float> x = gt::make_input<float>(gt::input_kind::levels_256, d, 9);
  const device_copy<float> dx(x);
  cudaStream_t stream = nullptr;
  ok(cudaStreamCreate(&stream));
  gc::cuda::workspace ws;
  const auto policy = gc::cuda::par.on(stream).with_workspace(ws);
  gc::cuda::sparse_vector<float> out;
  gc::compress(policy, gc::top_k{.k = k}, dx.span(), out);  // warm-up: sizes the workspace and the payload
  ok(cudaStreamSynchronize(stream));
  cudaGraph_t graph = nullptr;
  ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  gc::compress(policy, gc::top_k{.k = k}, dx.span(), out);
  ok(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  ok(cudaGraphInstantiate(&exec, graph, 0));
  ok(cudaMemsetAsync(out.indices(), 0xff, k * sizeof(std::uint32_t), stream));  // the replay must rewrite it all
  ok(cudaGraphLaunch(exec, stream));
  gc::sparse_vector<float> want;
  gc::compress(gc::exec::seq, gc::top_k{.k = k}, x, want);
  const auto got = out.to_host(stream);
  CHECK(got.indices == want.indices);
  CHECK(gt::same_bits(got.values, want.values));
  ok(cudaGraphExecDestroy(exec));
  ok(cudaGraphDestroy(graph));
  ok(cudaStreamDestroy(stream));
}

TEST_CASE_TEMPLATE("decompress_add: dense + alpha * v, the reference's two roundings", T, float, double) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{4097}, std::size_t{1000003}}) {
    CAPTURE(d);
    const std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 4);
    std::vector<T> dense = gt::make_input<T>(gt::input_kind::normal, d, 5);
    gc::sparse_vector<T> m;
    gc::compress(gc::exec::seq, gc::top_k{.k = d / 7 + 1}, x, m);
    for (const T alpha : {T(1), T(-1), T(0.3)}) {
      std::vector<T> want = dense;
      m.decompress_add(want, alpha);
      gc::cuda::sparse_vector<T> dm;
      dm.from_host(m);
      device_copy<T> dd(dense);
      gc::decompress_add(gc::cuda::par, dm, dd.span(), alpha);
      CHECK(gt::same_bits(dd.to_host(), want));
    }
  }
  gc::cuda::sparse_vector<float> dm;
  device_copy<float> wrong(std::size_t{3});
  dm.from_host(gc::sparse_vector<float>{.dim = 4, .indices = {1}, .values = {2.0f}});
  CHECK_THROWS_WITH_AS(gc::decompress_add(gc::cuda::par, dm, wrong.span(), 1.0f),
                       doctest::Contains("dense size 3 does not match payload dim 4"), gc::error);
}

TEST_CASE("errors a caller can make are gc::error with the reference's message, before any work") {
  const device_copy<float> dx(std::vector<float>(10, 1.0f));
  gc::cuda::sparse_vector<float> out;
  CHECK_THROWS_WITH_AS(gc::compress(gc::cuda::par, gc::top_k{.k = 0}, dx.span(), out), doctest::Contains("k must be >= 1"),
                       gc::error);
  CHECK_THROWS_WITH_AS(gc::compress(gc::cuda::par, gc::hard_threshold{.lambda = -1}, dx.span(), out),
                       doctest::Contains("lambda must be >= 0"), gc::error);
  gc::cuda::sparse_vector<float, std::uint8_t> narrow;
  const device_copy<float> big(std::vector<float>(300, 1.0f));
  CHECK_THROWS_AS(gc::compress(gc::cuda::par, gc::top_k{.k = 3}, big.span(), narrow), gc::error);
}
