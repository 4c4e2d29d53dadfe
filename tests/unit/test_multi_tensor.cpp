// Unit tests for gc::compress_model and gc::compress_layers (multi_tensor.hpp) on the
// sequential reference: whole-model compression is the compressor on the concatenation,
// layer-wise compression is one gc::compress call per tensor in order.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <gradcomp/gradcomp.hpp>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

struct model {
  std::vector<std::vector<float>> storage;
  std::vector<std::span<const float>> tensors;

  explicit model(const std::vector<std::size_t>& sizes) {
    for (std::size_t i = 0; i < sizes.size(); ++i)
      storage.push_back(gt::make_input<float>(gt::all_input_kinds[i % std::size(gt::all_input_kinds)], sizes[i], i + 1));
    for (const auto& s : storage) tensors.emplace_back(s);
  }
  std::vector<float> joined() const {
    std::vector<float> all;
    for (const auto& s : storage) all.insert(all.end(), s.begin(), s.end());
    return all;
  }
};

const std::vector<std::vector<std::size_t>> shapes{{}, {0}, {0, 0, 0}, {1}, {7, 0, 3}, {100, 1, 0, 4097, 55}, {5000, 5000}};

}  // namespace

TEST_CASE("compress_model: the compressor on the concatenation, indices over it") {
  for (const auto& shape : shapes) {
    const model m(shape);
    const std::vector<float> all = m.joined();
    CAPTURE(all.size());
    for (const std::size_t k : {1, 2, 5, 100, 5000, 20000}) {
      gc::sparse_vector<float> got, want;
      gc::compress_model(gc::exec::seq, gc::top_k{.k = k}, m.tensors, got);
      gc::compress(gc::exec::seq, gc::top_k{.k = k}, all, want);
      CHECK(got == want);
      CHECK(got.dim == all.size());
    }
    gc::sparse_vector<float> got, want;
    gc::compress_model(gc::exec::seq, gc::hard_threshold{.lambda = 0.6}, m.tensors, got);
    gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = 0.6}, all, want);
    CHECK(got == want);
    // A seeded compressor advances its step once, as one gc::compress call.
    gc::random_k a{.k = 3, .seed = 5, .step = 2}, b = a;
    gc::seeded_sparse_vector<float> ra, rb;
    gc::compress_model(gc::exec::seq, a, m.tensors, ra);
    gc::compress(gc::exec::seq, b, all, rb);
    CHECK(a.step == 3);
    CHECK(b.step == 3);
    CHECK(ra.indices == rb.indices);
    CHECK(gt::same_bits(ra.values, rb.values));
    gc::sign_vector<float> sa, sb;
    gc::compress_model(gc::exec::seq, gc::scaled_sign{}, m.tensors, sa);
    gc::compress(gc::exec::seq, gc::scaled_sign{}, all, sb);
    CHECK(sa.negative == sb.negative);
    CHECK(gt::same_bits(sa.scales, sb.scales));
  }
}

TEST_CASE("compress_model: the indices of later tensors are offset by the earlier tensors' sizes") {
  const std::vector<float> a{0.1f, -5.0f}, empty{}, b{3.0f, 0.2f, -4.0f};
  const std::vector<std::span<const float>> tensors{a, empty, b};
  gc::sparse_vector<float> out;
  gc::compress_model(gc::exec::seq, gc::top_k{.k = 3}, tensors, out);
  CHECK(out.dim == 5);
  CHECK(out.indices == std::vector<std::uint32_t>{1, 2, 4});
  CHECK(out.values == std::vector<float>{-5.0f, 3.0f, -4.0f});
  // The same through a span of spans.
  gc::sparse_vector<float> again;
  gc::compress_model(gc::exec::seq, gc::top_k{.k = 3}, std::span<const std::span<const float>>(tensors), again);
  CHECK(again == out);
}

TEST_CASE("compress_model: empty lists and errors") {
  const std::vector<std::span<const float>> none;
  gc::sparse_vector<float> out;
  out.indices = {1};
  out.values = {1.0f};
  gc::compress_model(gc::exec::seq, gc::top_k{.k = 4}, none, out);
  CHECK(out.dim == 0);
  CHECK(out.nnz() == 0);
  CHECK_THROWS_WITH_AS(gc::compress_model(gc::exec::seq, gc::top_k{.k = 0}, none, out),
                       doctest::Contains("k must be >= 1"), gc::error);

  const std::vector<float> a(200, 1.0f), b(56, 2.0f);
  const std::vector<std::span<const float>> fits{a, b};
  gc::sparse_vector<float, std::uint8_t> small;
  gc::compress_model(gc::exec::seq, gc::top_k{.k = 60}, fits, small);  // 256 elements: index 255 fits
  REQUIRE(small.nnz() == 60);
  CHECK(small.indices[3] == 3);    // four ties at 1.0, the lowest indices
  CHECK(small.indices[4] == 200);  // then all 56 entries of b
  CHECK(small.indices.back() == 255);
  const std::vector<float> c(1, 3.0f);
  const std::vector<std::span<const float>> too_many{a, b, c};
  CHECK_THROWS_WITH_AS(gc::compress_model(gc::exec::seq, gc::top_k{.k = 1}, too_many, small),
                       doctest::Contains("does not fit the index type"), gc::error);
}

TEST_CASE("compress_layers: one gc::compress per tensor, in order") {
  for (const auto& shape : shapes) {
    const model m(shape);
    const std::size_t n = m.tensors.size();
    std::vector<gc::sparse_vector<float>> outs(n);
    gc::compress_layers(gc::exec::seq, gc::top_k{.k = 3}, m.tensors, outs);
    for (std::size_t i = 0; i < n; ++i) {
      gc::sparse_vector<float> want;
      gc::compress(gc::exec::seq, gc::top_k{.k = 3}, m.tensors[i], want);
      CHECK(outs[i] == want);
    }
    // Seeded: the step advances once per tensor; tensor i sees step0 + i.
    gc::random_k rk{.k = 2, .seed = 11, .step = 7}, manual = rk;
    std::vector<gc::seeded_sparse_vector<float>> rk_outs(n);
    gc::compress_layers(gc::exec::seq, rk, m.tensors, std::span<gc::seeded_sparse_vector<float>>(rk_outs));
    CHECK(rk.step == 7 + n);
    for (std::size_t i = 0; i < n; ++i) {
      gc::seeded_sparse_vector<float> want;
      gc::compress(gc::exec::seq, manual, m.tensors[i], want);
      CHECK(rk_outs[i].step == 7 + i);
      CHECK(rk_outs[i].indices == want.indices);
      CHECK(gt::same_bits(rk_outs[i].values, want.values));
    }
    CHECK(manual.step == rk.step);
  }
}

TEST_CASE("compress_layers: mismatched lengths and bad parameters fail before any tensor is compressed") {
  const model m({10, 20, 30});
  std::vector<gc::sparse_vector<float>> two(2);
  CHECK_THROWS_WITH_AS(gc::compress_layers(gc::exec::seq, gc::top_k{.k = 3}, m.tensors, two),
                       doctest::Contains("3 tensors but 2 output payloads"), gc::error);
  CHECK(two[0].dim == 0);
  gc::random_k rk{.k = 0, .seed = 1, .step = 9};
  std::vector<gc::seeded_sparse_vector<float>> outs(3);
  CHECK_THROWS_WITH_AS(gc::compress_layers(gc::exec::seq, rk, m.tensors, outs), doctest::Contains("k must be >= 1"),
                       gc::error);
  CHECK(rk.step == 9);
  CHECK(outs[0].dim == 0);
  // Empty lists: nothing to do.
  const std::vector<std::span<const float>> none;
  std::vector<gc::sparse_vector<float>> no_outs;
  gc::compress_layers(gc::exec::seq, gc::top_k{.k = 3}, none, no_outs);
  CHECK(no_outs.empty());
}

TEST_CASE("compress_layers: a tensor failing part-way throws its error and leaves a seeded step where it was") {
  // Tensors 2 and 4 hold a NaN (at different positions, so the messages tell them apart):
  // qsgd and grid_rounding reject it. The first failing tensor's error is thrown, the step is
  // back at its value before the call, and each payload holds its old value or its new one.
  model m({10, 20, 30, 40, 50, 60});
  m.storage[2][3] = std::numeric_limits<float>::quiet_NaN();
  m.storage[4][7] = std::numeric_limits<float>::quiet_NaN();
  const std::size_t n = m.tensors.size();

  const auto check_outs = [&](const auto& outs, const auto& old_outs, auto fresh_compressor) {
    for (std::size_t i = 0; i < n; ++i) {
      CAPTURE(i);
      if (outs[i] == old_outs[i]) continue;
      auto c = fresh_compressor(i);  // the compressor at the step tensor i would use
      std::decay_t<decltype(outs[i])> want;
      gc::compress(gc::exec::seq, c, m.tensors[i], want);
      CHECK(outs[i] == want);
    }
  };
  {
    gc::qsgd c{.s = 4, .seed = 3, .step = 10};
    std::vector<gc::quantized_vector<float>> outs(n);
    for (std::size_t i = 0; i < n; ++i) outs[i].scale = static_cast<float>(i + 1);  // recognisable old state
    const auto old_outs = outs;
    CHECK_THROWS_WITH_AS(gc::compress_layers(gc::exec::seq, c, m.tensors, outs), doctest::Contains("x[3]"), gc::error);
    CHECK(c.step == 10);
    check_outs(outs, old_outs, [](std::size_t i) { return gc::qsgd{.s = 4, .seed = 3, .step = 10 + i}; });
    // The same compressor then compresses a good list from step 10.
    const model good({10, 20});
    std::vector<gc::quantized_vector<float>> good_outs(2);
    gc::compress_layers(gc::exec::seq, c, good.tensors, good_outs);
    CHECK(c.step == 12);
    CHECK(good_outs[0].levels.size() == 10);
  }
  {
    gc::grid_rounding c{.spacing = 0.1, .stochastic = true, .seed = 1, .step = 0};
    std::vector<gc::quantized_vector<float>> outs(n);
    const auto old_outs = outs;
    CHECK_THROWS_WITH_AS(gc::compress_layers(gc::exec::seq, c, m.tensors, outs), doctest::Contains("x[3]"), gc::error);
    CHECK(c.step == 0);
    check_outs(outs, old_outs, [](std::size_t i) {
      return gc::grid_rounding{.spacing = 0.1, .stochastic = true, .seed = 1, .step = i};
    });
  }
  {
    // random_k fails on a tensor whose size does not fit the index type (tensor 1: 300 > 256).
    const model sized({10, 300, 10, 400});
    gc::random_k c{.k = 2, .seed = 4, .step = 7};
    std::vector<gc::seeded_sparse_vector<float, std::uint8_t>> outs(4);
    CHECK_THROWS_WITH_AS(gc::compress_layers(gc::exec::seq, c, sized.tensors, outs),
                         doctest::Contains("d = 300 does not fit"), gc::error);
    CHECK(c.step == 7);
  }
}
