// Whole-model Top-k and hard-threshold on the CUDA back end (gc::compress_model over a list
// of device tensors) against exec::seq's compress_model, bit for bit: empty lists and
// tensors, more tensors than one concatenation launch takes, ties across tensor boundaries,
// NaN and Inf, k from 1 to beyond d, 32- and 64-bit indices.
#include "cuda_support.cuh"

#include <random>

using namespace gradcomp_cuda_test;

namespace {

/// Tensors of the given sizes, of mixed input kinds, on the host and on the device.
template <class T>
struct device_model {
  std::vector<std::vector<T>> host;
  std::vector<device_copy<T>> device;
  std::vector<std::span<const T>> host_tensors, device_tensors;

  device_model(const std::vector<std::size_t>& sizes, std::uint64_t seed) {
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const auto kind = gt::all_input_kinds[(i + seed) % std::size(gt::all_input_kinds)];
      host.push_back(gt::make_input<T>(kind, sizes[i], seed * 131 + i));
      if (i % 4 == 1) place_specials(host.back(), seed + i);
    }
    device.reserve(host.size());
    for (const auto& h : host) device.emplace_back(h);
    for (std::size_t i = 0; i < host.size(); ++i) {
      host_tensors.emplace_back(host[i]);
      device_tensors.push_back(device[i].span());
    }
  }
  std::size_t total() const {
    std::size_t d = 0;
    for (const auto& h : host) d += h.size();
    return d;
  }
};


std::vector<std::vector<std::size_t>> shapes() {
  std::vector<std::vector<std::size_t>> s{
      {}, {0, 0}, {5}, {3, 0, 9, 1}, {70000}, {65536, 1, 65535, 2, 4096},
      gt::layer_sizes(40, 20000, 1),
      gt::layer_sizes(200, 3000, 2),  // more tensors than one launch takes (tuning::multi_tensor::batch)
      std::vector<std::size_t>(130, 1),
  };
  if (!sizes().empty() && sizes().back() >= (std::size_t{1} << 22)) s.push_back(gt::layer_sizes(100, 200000, 3));
  return s;
}

template <class T, class Index, class C>
void check_model(const C& c, const device_model<T>& m, gc::cuda::sparse_vector<T, Index>& out) {
  gc::sparse_vector<T, Index> want;
  gc::compress_model(gc::exec::seq, c, m.host_tensors, want);
  gc::compress_model(gc::cuda::par, c, m.device_tensors, out);
  const gc::sparse_vector<T, Index> got = out.to_host();
  CHECK(got.dim == want.dim);
  REQUIRE(got.indices == want.indices);
  REQUIRE(gt::same_bits(got.values, want.values));
}

}  // namespace

TEST_CASE_TEMPLATE("compress_model: whole-model top_k and hard_threshold give exec::seq's entries", T, float, double) {
  gc::cuda::sparse_vector<T> out;  // reused across calls
  const auto all = shapes();
  for (std::size_t s = 0; s < all.size(); ++s) {
    CAPTURE(s);
    const device_model<T> m(all[s], s + 1);
    const std::size_t d = m.total();
    CAPTURE(d);
    for (const std::size_t k : {std::size_t{1}, std::size_t{2}, std::size_t{100}, d / 1000 + 1, d / 3 + 1,
                                d > 1 ? d - 1 : 1, d > 0 ? d : 1, d + 10}) {
      CAPTURE(k);
      check_model(gc::top_k{.k = k}, m, out);
    }
    for (const double lambda : {0.0, 0.5, 1.0, 2.5, 1e300}) {
      CAPTURE(lambda);
      check_model(gc::hard_threshold{.lambda = lambda}, m, out);
    }
  }
  SUBCASE("64-bit indices") {
    const device_model<T> m(gt::layer_sizes(70, 5000, 9), 9);
    gc::cuda::sparse_vector<T, std::uint64_t> wide;
    check_model(gc::top_k{.k = 777}, m, wide);
    check_model(gc::hard_threshold{.lambda = 1.0}, m, wide);
  }
}

TEST_CASE("compress_model: ties across tensor boundaries go to the lowest concatenated indices") {
  // Every tensor holds the same magnitude; the k kept must be the first k of the concatenation.
  const std::vector<std::size_t> sizes{3, 0, 5000, 1, 70, 9000};
  std::vector<std::vector<float>> host;
  for (const std::size_t n : sizes) host.emplace_back(n, -2.0f);
  std::vector<device_copy<float>> device;
  for (const auto& h : host) device.emplace_back(h);
  std::vector<std::span<const float>> tensors;
  for (const auto& dc : device) tensors.push_back(dc.span());
  gc::cuda::sparse_vector<float> out;
  for (const std::size_t k : {std::size_t{1}, std::size_t{3}, std::size_t{4}, std::size_t{5005}, std::size_t{14000}}) {
    CAPTURE(k);
    gc::compress_model(gc::cuda::par, gc::top_k{.k = k}, tensors, out);
    const auto got = out.to_host();
    REQUIRE(got.indices.size() == k);
    for (std::size_t j = 0; j < k; ++j) REQUIRE(got.indices[j] == j);
  }
}

TEST_CASE("compress_model: errors are the reference's, and a bad k changes nothing") {
  const device_copy<float> a(std::vector<float>(10, 1.0f));
  const std::vector<std::span<const float>> tensors{a.span()};
  gc::cuda::sparse_vector<float> out;
  gc::compress_model(gc::cuda::par, gc::top_k{.k = 3}, tensors, out);
  const auto before = out.to_host();
  CHECK_THROWS_AS(gc::compress_model(gc::cuda::par, gc::top_k{.k = 0}, tensors, out), gc::error);
  CHECK_THROWS_AS(gc::compress_model(gc::cuda::par, gc::hard_threshold{.lambda = -1.0}, tensors, out), gc::error);
  const auto after = out.to_host();
  CHECK(after.indices == before.indices);
  CHECK(gt::same_bits(after.values, before.values));
}
