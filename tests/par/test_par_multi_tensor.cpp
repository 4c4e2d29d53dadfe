// Tensor lists on exec::par: whole-model top_k / hard_threshold (read in place) and
// layer-wise compression spread over threads, bit-identical to exec::seq.
#include "par_compare.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

using namespace gradcomp_par_test;
namespace cd = gc::cpu::detail;

namespace {

/// A model: tensors of the given sizes, of mixed input kinds, with NaN / Inf in a few.
template <class T>
struct model {
  std::vector<std::vector<T>> storage;
  std::vector<std::span<const T>> tensors;

  model(const std::vector<std::size_t>& sizes, std::uint64_t seed, bool specials = true) {
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const auto kind = gt::all_input_kinds[(i + seed) % std::size(gt::all_input_kinds)];
      storage.push_back(gt::make_input<T>(kind, sizes[i], seed * 131 + i));
      if (specials && i % 4 == 1) place_specials(storage.back(), seed + i, 1 + sizes[i] / 2000);
    }
    for (const auto& s : storage) tensors.emplace_back(s);
  }

  std::vector<T> joined() const {
    std::vector<T> all;
    for (const auto& s : storage) all.insert(all.end(), s.begin(), s.end());
    return all;
  }
  std::size_t total() const {
    std::size_t d = 0;
    for (const auto& s : storage) d += s.size();
    return d;
  }
};


}  // namespace

TEST_CASE_TEMPLATE("par compress_model: top_k and hard_threshold over the concatenation, bit-identical to seq", T,
                   GRADCOMP_PAR_FLOATS) {
  const std::vector<std::vector<std::size_t>> shapes{
      {},
      {0, 0},
      {5},
      {3, 0, 9, 1},
      {70000},
      {65536, 1, 65535, 2, 4096},
      {40000, 40000, 40000},
      gt::layer_sizes(40, 20000, 1),
      gt::layer_sizes(12, 300000, 2),
      {1 << 20},
      {100000, 0, 700000, 33, 250000},
  };
  for (std::size_t s = 0; s < shapes.size(); ++s) {
    CAPTURE(s);
    const model<T> m(shapes[s], s + 1);
    const std::size_t d = m.total();
    CAPTURE(d);
    const std::vector<T> all = m.joined();
    std::vector<std::size_t> ks{1, 2, 100, d / 1000 + 1, d / 50 + 1, d / 3, d > 0 ? d - 1 : 1, d, d + 10};
    for (const std::size_t k : ks) {
      if (k == 0) continue;
      CAPTURE(k);
      gc::sparse_vector<T> ref, via_concat;
      gc::compress_model(gc::exec::seq, gc::top_k{.k = k}, m.tensors, ref);
      gc::compress(gc::exec::seq, gc::top_k{.k = k}, all, via_concat);
      check_same_sparse(via_concat, ref);
      for_each_thread_count([&] {
        for (const auto& policy : policies()) {
          CAPTURE(policy_name(policy));
          gc::sparse_vector<T> got;
          got.indices.assign(2, 1);
          gc::compress_model(policy, gc::top_k{.k = k}, m.tensors, got);
          check_same_sparse(ref, got);
        }
      });
    }
    for (const double lambda : {0.0, 0.5, 1.0, 2.5, 1e300}) {
      CAPTURE(lambda);
      gc::sparse_vector<T> ref;
      gc::compress_model(gc::exec::seq, gc::hard_threshold{.lambda = lambda}, m.tensors, ref);
      for_each_thread_count([&] {
        for (const auto& policy : policies()) {
          gc::sparse_vector<T> got;
          gc::compress_model(policy, gc::hard_threshold{.lambda = lambda}, m.tensors, got);
          check_same_sparse(ref, got);
        }
      });
    }
  }
}

TEST_CASE_TEMPLATE("par compress_model: whole-model top_k takes every path without concatenating", T, GRADCOMP_PAR_FLOATS) {
  // Tensors of unequal scale: the k largest come mostly from one layer.
  std::vector<std::vector<T>> storage{gt::make_input<T>(gt::input_kind::normal, 300000, 1),
                                      gt::make_input<T>(gt::input_kind::heavy_tailed, 500000, 2),
                                      gt::make_input<T>(gt::input_kind::all_equal, 200000, 3),
                                      gt::make_input<T>(gt::input_kind::levels_256, 123457, 4)};
  for (auto& v : storage[0]) v *= T(0.01);
  std::vector<std::span<const T>> tensors(storage.begin(), storage.end());
  std::vector<T> all;
  for (const auto& s : storage) all.insert(all.end(), s.begin(), s.end());
  const std::size_t d = all.size();
  const auto policy = gc::exec::par.with_min_parallel_size(0);
  // k whose k-th magnitude is the all-equal layer's: 100000 of its 200000 ties are kept.
  const auto tie_key = gc::detail::magnitude_key(storage[2][0]);
  const auto above = static_cast<std::size_t>(
      std::count_if(all.begin(), all.end(), [&](T v) { return gc::detail::magnitude_key(v) > tie_key; }));
  for_each_thread_count([&] {
    for (const std::size_t k : {std::size_t{10}, std::size_t{5000}, above + 100000, d / 2, d - 1}) {
      CAPTURE(k);
      gc::sparse_vector<T> ref, got;
      gc::compress(gc::exec::seq, gc::top_k{.k = k}, all, ref);
      got.reset(d);
      const auto path = cd::top_k_into(policy, cd::segmented_input<T>(std::span<const std::span<const T>>(tensors)), k, got);
      check_same_sparse(ref, got);
      if (k <= 5000) CHECK(path == cd::top_k_path::sampled);
      if (k == d - 1) CHECK(path == cd::top_k_path::fallback_direct);
    }
    // Adversarial for the sample: large values exactly where it looks, spread over tensors.
    std::vector<T> joined(d, T(0.5));
    cd::for_each_sample_run(d, [&](std::size_t begin, std::size_t n) {
      for (std::size_t i = begin; i < begin + n; ++i) joined[i] = T(100) + static_cast<T>(i % 7);
    });
    std::vector<std::span<const T>> pieces;
    for (std::size_t begin = 0, len = 1; begin < d; begin += len, len = len * 3 + 1)
      pieces.emplace_back(joined.data() + begin, std::min(len, d - begin));
    gc::sparse_vector<T> ref, got;
    gc::compress(gc::exec::seq, gc::top_k{.k = d / 10}, joined, ref);
    got.reset(d);
    const auto path =
        cd::top_k_into(policy, cd::segmented_input<T>(std::span<const std::span<const T>>(pieces)), d / 10, got);
    CHECK(path == cd::top_k_path::fallback_few);
    check_same_sparse(ref, got);
  });
}

TEST_CASE_TEMPLATE("par compress_layers: every compressor layer by layer, bit-identical to the seq loop", T, float,
                   double) {
  const model<T> m(gt::layer_sizes(300, 5000, 7), 7);
  const std::size_t n = m.tensors.size();
  for_each_thread_count([&] {
    for (const auto& policy : policies()) {
      CAPTURE(policy_name(policy));
      for (const std::size_t k : {std::size_t{1}, std::size_t{17}, std::size_t{1000}}) {
        std::vector<gc::sparse_vector<T>> ref(n), got(n);
        gc::compress_layers(gc::exec::seq, gc::top_k{.k = k}, m.tensors, ref);
        gc::compress_layers(policy, gc::top_k{.k = k}, m.tensors, got);
        for (std::size_t i = 0; i < n; ++i) check_same_sparse(ref[i], got[i]);
      }
      {
        std::vector<gc::sparse_vector<T>> ref(n), got(n);
        gc::compress_layers(gc::exec::seq, gc::hard_threshold{.lambda = 0.7}, m.tensors, ref);
        gc::compress_layers(policy, gc::hard_threshold{.lambda = 0.7}, m.tensors, got);
        for (std::size_t i = 0; i < n; ++i) check_same_sparse(ref[i], got[i]);
      }
      {
        // Seeded: tensor i uses step0 + i, and the compressor ends at step0 + n.
        gc::random_k seq_c{.k = 40, .seed = 99, .step = 5}, par_c = seq_c;
        std::vector<gc::seeded_sparse_vector<T>> ref(n), got(n);
        gc::compress_layers(gc::exec::seq, seq_c, m.tensors, ref);
        gc::compress_layers(policy, par_c, m.tensors, got);
        CHECK(seq_c.step == 5 + n);
        CHECK(par_c.step == seq_c.step);
        for (std::size_t i = 0; i < n; ++i) {
          CHECK(got[i].step == 5 + i);
          CHECK(got[i].indices == ref[i].indices);
          CHECK(gt::same_bits(got[i].values, ref[i].values));
        }
      }
      {
        std::vector<gc::sign_vector<T>> ref(n), got(n);
        gc::compress_layers(gc::exec::seq, gc::scaled_sign{}, m.tensors, ref);
        gc::compress_layers(policy, gc::scaled_sign{}, m.tensors, got);
        for (std::size_t i = 0; i < n; ++i) {
          CHECK(got[i].negative == ref[i].negative);
          CHECK(gt::same_result(got[i].scales, ref[i].scales));
        }
      }
    }
  });
}

TEST_CASE("par compress_layers: many tiny tensors, and errors before anything is written") {
  const model<float> m(std::vector<std::size_t>(5000, 37), 3, false);
  std::vector<gc::sparse_vector<float>> ref(5000), got(5000);
  gc::compress_layers(gc::exec::seq, gc::top_k{.k = 3}, m.tensors, ref);
  gc::compress_layers(gc::exec::par.with_min_parallel_size(0), gc::top_k{.k = 3}, m.tensors, got);
  for (std::size_t i = 0; i < ref.size(); ++i) check_same_sparse(ref[i], got[i]);

  std::vector<gc::sparse_vector<float>> too_few(4999);
  CHECK_THROWS_WITH_AS(gc::compress_layers(gc::exec::par, gc::top_k{.k = 3}, m.tensors, too_few),
                       doctest::Contains("5000 tensors but 4999 output payloads"), gc::error);
  gc::random_k rk{.k = 0, .seed = 1, .step = 4};
  std::vector<gc::seeded_sparse_vector<float>> rk_out(5000);
  CHECK_THROWS_WITH_AS(gc::compress_layers(gc::exec::par, rk, m.tensors, rk_out), doctest::Contains("k must be >= 1"),
                       gc::error);
  CHECK(rk.step == 4);
  CHECK(rk_out[0].dim == 0);
}

TEST_CASE("par compress_model: errors match seq") {
  std::vector<float> a(200, 1.0f), b(100, 2.0f);
  const std::vector<std::span<const float>> tensors{a, b};
  gc::sparse_vector<float, std::uint8_t> out;
  std::string seq_msg, par_msg;
  try {
    gc::compress_model(gc::exec::seq, gc::top_k{.k = 3}, tensors, out);
  } catch (const gc::error& e) {
    seq_msg = e.what();
  }
  try {
    gc::compress_model(gc::exec::par, gc::top_k{.k = 3}, tensors, out);
  } catch (const gc::error& e) {
    par_msg = e.what();
  }
  CHECK(seq_msg.find("does not fit the index type") != std::string::npos);
  CHECK(par_msg == seq_msg);
  gc::sparse_vector<float> wide;
  CHECK_THROWS_WITH_AS(gc::compress_model(gc::exec::par, gc::top_k{.k = 0}, tensors, wide),
                       doctest::Contains("k must be >= 1"), gc::error);
  CHECK_THROWS_WITH_AS(gc::compress_model(gc::exec::par, gc::hard_threshold{.lambda = -1.0}, tensors, wide),
                       doctest::Contains("lambda must be >= 0"), gc::error);
}

TEST_CASE_TEMPLATE("par compress_layers: a tensor failing part-way throws the first failure's error, step unchanged", T,
                   GRADCOMP_PAR_FLOATS) {
  // Several tensors hold a NaN, each at its own position, so the message (x[pos]) tells which
  // failed: every back end throws the lowest failing tensor's error, the one the seq loop
  // throws, and leaves a seeded compressor's step where it was before the call.
  model<T> m(gt::layer_sizes(200, 20000, 11), 11, false);
  const std::size_t n = m.tensors.size();
  std::vector<std::size_t> failing;
  for (std::size_t i = 0; i < n && failing.size() < 4; ++i)
    if (m.storage[i].size() > 20 + failing.size() && i > 30 + 40 * failing.size()) failing.push_back(i);
  REQUIRE(failing.size() == 4);
  for (std::size_t f = 0; f < failing.size(); ++f) m.storage[failing[f]][10 + f] = std::numeric_limits<T>::quiet_NaN();
  const auto check = [&](auto compressor) {
    using C = decltype(compressor);
    const std::uint64_t step0 = compressor.step;
    std::vector<gc::quantized_vector<T>> ref(n), got(n);
    C seq_c = compressor;
    const std::string expected = error_message([&] { gc::compress_layers(gc::exec::seq, seq_c, m.tensors, ref); });
    CHECK(expected.find("x[10]") != std::string::npos);  // failing[0]'s NaN
    CHECK(seq_c.step == step0);
    for_each_thread_count([&] {
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        C par_c = compressor;
        CHECK(error_message([&] { gc::compress_layers(policy, par_c, m.tensors, got); }) == expected);
        CHECK(par_c.step == step0);
      }
    });
  };
  check(gc::qsgd{.s = 16, .seed = 5, .step = 100});
  check(gc::grid_rounding{.spacing = 0.01, .stochastic = true, .seed = 5, .step = 7});
}
