// top_k and its fused error-feedback step on exec::par: bit-identical to exec::seq on every
// input kind, size, k (ties at the k-th magnitude included), thread count and index type,
// and on every internal path (sequential, sampled, the three exact fallbacks).
#include "par_compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

using namespace gradcomp_par_test;
namespace cd = gc::cpu::detail;

namespace {

/// The k values worth testing on x: the extremes, typical densities, and the edges of the
/// tie groups near the top (k ending exactly on a group, and one into the next).
template <class T>
std::vector<std::size_t> interesting_ks(const std::vector<T>& x) {
  const std::size_t d = x.size();
  std::vector<std::size_t> ks{1, 2, 3, 7, 64, d / 1000 + 1, d / 100 + 1, d / 10 + 1, d / 2, d - 1, d, d + 1, 3 * d + 5};
  std::vector<gc::detail::uint_of<T>> keys(d);
  for (std::size_t i = 0; i < d; ++i) keys[i] = gc::detail::magnitude_key(x[i]);
  std::sort(keys.begin(), keys.end(), std::greater<>{});
  // Group edges among the first few groups, and around ranks d/100 and d/10.
  std::size_t edges = 0;
  for (std::size_t j = 0; j + 1 < d && edges < 6; ++j) {
    if (keys[j] != keys[j + 1]) {
      ks.push_back(j + 1);
      ks.push_back(j + 2);
      ++edges;
    }
  }
  for (const std::size_t r : {d / 100, d / 10}) {
    if (r == 0 || r >= d) continue;
    std::size_t j = r;
    while (j + 1 < d && keys[j] == keys[j + 1]) ++j;  // end of the group holding rank r + 1
    ks.push_back(j + 1);
    ks.push_back(j + 2);
  }
  std::vector<std::size_t> out;
  for (const std::size_t k : ks)
    if (k >= 1 && std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  return out;
}

/// par (every policy, every thread count) against seq for top_k{k} on x.
template <class T, class Index = std::uint32_t>
void check_top_k(const std::vector<T>& x, std::size_t k) {
  CAPTURE(k);
  gc::sparse_vector<T, Index> ref;
  gc::compress(gc::exec::seq, gc::top_k{.k = k}, x, ref);
  REQUIRE(ref.nnz() == std::min(k, x.size()));
  for_each_thread_count([&] {
    for (const auto& policy : policies()) {
      CAPTURE(policy_name(policy));
      gc::sparse_vector<T, Index> got;
      got.indices.assign(3, 7);  // stale contents must be replaced
      got.values.assign(2, T(9));
      gc::compress(policy, gc::top_k{.k = k}, x, got);
      check_same_sparse(ref, got);
    }
  });
}

/// The path top_k takes on x (run on the workers), after checking its result against seq.
template <class T>
cd::top_k_path path_of(const std::vector<T>& x, std::size_t k) {
  gc::sparse_vector<T> ref, got;
  gc::compress(gc::exec::seq, gc::top_k{.k = k}, x, ref);
  got.reset(x.size());
  const auto path = cd::top_k_into(gc::exec::par.with_min_parallel_size(0), cd::segmented_input<T>(std::span<const T>(x)),
                                   k, got);
  check_same_sparse(ref, got);
  return path;
}

/// Inputs that defeat the sample. sample_high: large magnitudes exactly at the sampled
/// positions (the sample overestimates the k-th magnitude: too few candidates);
/// !sample_high: small ones there (it underestimates: far too many candidates).
template <class T>
std::vector<T> misleading_input(std::size_t d, bool sample_high, std::uint64_t seed) {
  std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, d, seed);
  std::vector<bool> sampled(d, false);
  cd::for_each_sample_run(d, [&](std::size_t begin, std::size_t n) {
    for (std::size_t i = begin; i < begin + n; ++i) sampled[i] = true;
  });
  for (std::size_t i = 0; i < d; ++i) {
    const T unit = static_cast<T>(std::fabs(static_cast<double>(x[i])) / 8.0);  // in [0, ~1)
    const bool high = sampled[i] == sample_high;
    x[i] = (i % 2 ? T(-1) : T(1)) * (high ? T(10) + unit : unit);
  }
  return x;
}

}  // namespace

TEST_CASE_TEMPLATE("par top_k: bit-identical to seq on every input kind, size and k", T, GRADCOMP_PAR_FLOATS) {
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      // The largest size (16 chunks) for a plain and a tie-heavy kind; 3 * 65536 + 4099 spans
      // chunks with ragged tails for every kind.
      if (d >= (std::size_t{1} << 20) && kind != gt::input_kind::normal && kind != gt::input_kind::ties) continue;
      std::vector<T> x = gt::make_input<T>(kind, d, d + 5);
      if (d % 3 == 0) place_specials(x, d, 1 + d / 1000);
      std::vector<std::size_t> ks = interesting_ks(x);
      if (d > 100000) ks.resize(std::min<std::size_t>(ks.size(), 16));  // keep the large sizes quick
      for (const std::size_t k : ks) check_top_k(x, k);
    }
  }
}

TEST_CASE_TEMPLATE("par top_k: NaN and Inf rank above every finite magnitude, NaN above Inf", T, GRADCOMP_PAR_FLOATS) {
  const std::size_t d = 300000;
  std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, d, 17);
  place_specials(x, 99, 400);  // about 80 of each: +-NaN, +-Inf, -0
  for (const std::size_t k : {1, 50, 80, 160, 161, 170, 400, 3000}) check_top_k(x, k);
  // Every value NaN or Inf: all ties among the NaNs of one payload.
  std::vector<T> specials(d, std::numeric_limits<T>::infinity());
  place_specials(specials, 5, 20000);
  for (const std::size_t k : {1, 4000, 8001, 12000, 200000}) check_top_k(specials, k);
}

TEST_CASE_TEMPLATE("par top_k: 64-bit indices", T, GRADCOMP_PAR_FLOATS) {
  for (const std::size_t d : {std::size_t{1000}, std::size_t{65537}, std::size_t{1} << 20}) {
    CAPTURE(d);
    std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 3);
    for (const std::size_t k : {std::size_t{1}, d / 100, d - 1}) check_top_k<T, std::uint64_t>(x, k);
    std::vector<T> eq = gt::make_input<T>(gt::input_kind::all_equal, d, 3);
    check_top_k<T, std::uint64_t>(eq, d / 3);
  }
}

TEST_CASE_TEMPLATE("par top_k: every path is taken and exact", T, GRADCOMP_PAR_FLOATS) {
  const std::size_t d = std::size_t{1} << 20;
  for_each_thread_count([&] {
    const std::vector<T> normal = gt::make_input<T>(gt::input_kind::normal, d, 1);
    CHECK(path_of(normal, 1000) == cd::top_k_path::sampled);
    CHECK(path_of(normal, d / 2) == cd::top_k_path::sampled);
    CHECK(path_of(normal, d - 3) == cd::top_k_path::fallback_direct);  // k near d
    CHECK(path_of(normal, d) == cd::top_k_path::keep_all);
    CHECK(path_of(std::vector<T>(normal.begin(), normal.begin() + 1000), 10) == cd::top_k_path::small);
    // Heavy ties: all equal, and few distinct magnitudes.
    const std::vector<T> equal = gt::make_input<T>(gt::input_kind::all_equal, d, 1);
    for (const std::size_t k : {std::size_t{1}, std::size_t{777}, d / 3}) CHECK(path_of(equal, k) == cd::top_k_path::fallback_direct);
    const std::vector<T> ties = gt::make_input<T>(gt::input_kind::ties, d, 1);
    CHECK(path_of(ties, 5000) == cd::top_k_path::fallback_direct);
    // The sample misleads: too few candidates, then far too many.
    const std::vector<T> high = misleading_input<T>(d, true, 2);
    for (const std::size_t k : {d / 100, d / 10}) CHECK(path_of(high, k) == cd::top_k_path::fallback_few);
    const std::vector<T> low = misleading_input<T>(d, false, 3);
    for (const std::size_t k : {std::size_t{100}, std::size_t{5000}}) CHECK(path_of(low, k) == cd::top_k_path::fallback_cap);
    // Tie-heavy inputs that still take the sampled path, with the k-th key inside a big tie group.
    const std::vector<T> levels = gt::make_input<T>(gt::input_kind::levels_256, d, 4);
    std::size_t sampled = 0;
    for (const std::size_t k : interesting_ks(levels)) {
      if (k >= d) continue;
      CAPTURE(k);
      sampled += path_of(levels, k) == cd::top_k_path::sampled;
    }
    CHECK(sampled >= 4);
    const std::vector<T> narrow = gt::make_input<T>(gt::input_kind::narrow_range, d, 5);
    // 250 tie groups of ~4000: candidate sets padded by ties, still worth the sampled path.
    for (const std::size_t k : {std::size_t{1}, std::size_t{1000}, d / 7}) CHECK(path_of(narrow, k) == cd::top_k_path::sampled);
  });
}

TEST_CASE_TEMPLATE("par top_k, hard_threshold, compress_model: a reused output is overwritten in full on every path",
                   T, GRADCOMP_PAR_FLOATS) {
  // The kernels size the output's vectors themselves, without clearing them first (a call
  // that repeats the last call's k then writes no zeros): stale entries, more or fewer than
  // the result, in vectors of unequal lengths, with a wrong dimension, must never survive.
  const std::size_t d = std::size_t{1} << 20;
  const std::vector<T> normal = gt::make_input<T>(gt::input_kind::normal, d, 21);
  const std::vector<T> small(normal.begin(), normal.begin() + 1000);
  const std::vector<T> high = misleading_input<T>(d, true, 22), low = misleading_input<T>(d, false, 23);
  const std::vector<T> empty;
  const auto fill_stale = [](gc::sparse_vector<T>& out, std::size_t n) {
    out.dim = 123;
    out.indices.assign(n, 0xFFFFFFFFu);
    out.values.assign(n + 3, std::numeric_limits<T>::quiet_NaN());
  };
  const auto stale_counts = [](std::size_t result) {
    return std::vector<std::size_t>{0, 7, result / 2, result, 2 * result + 5};
  };
  struct top_k_case {
    const std::vector<T>* x;
    std::size_t k;
  };
  const top_k_case top_k_cases[] = {{&normal, 1000}, {&normal, d / 2}, {&normal, d - 3}, {&normal, d},
                                    {&small, 10},    {&high, d / 100}, {&low, 5000},     {&empty, 1}};
  for (const auto& [x, k] : top_k_cases) {
    CAPTURE(x->size());
    CAPTURE(k);
    gc::sparse_vector<T> ref, got;
    gc::compress(gc::exec::seq, gc::top_k{.k = k}, *x, ref);
    for (const auto& policy : policies()) {
      for (const std::size_t stale : stale_counts(ref.nnz())) {
        CAPTURE(stale);
        fill_stale(got, stale);
        gc::compress(policy, gc::top_k{.k = k}, *x, got);
        check_same_sparse(ref, got);
      }
    }
  }
  for (const std::vector<T>* x : {&normal, &small, &empty}) {
    for (const double lambda : {0.5, 3.0, 1e30}) {
      CAPTURE(x->size());
      CAPTURE(lambda);
      gc::sparse_vector<T> ref, got;
      gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = lambda}, *x, ref);
      for (const auto& policy : policies()) {
        for (const std::size_t stale : stale_counts(ref.nnz())) {
          CAPTURE(stale);
          fill_stale(got, stale);
          gc::compress(policy, gc::hard_threshold{.lambda = lambda}, *x, got);
          check_same_sparse(ref, got);
        }
      }
    }
  }
  // The whole-model forms, over three tensors.
  const std::span<const T> all(normal);
  const std::span<const T> pieces[] = {all.first(1000), all.subspan(1000, d / 2), all.subspan(1000 + d / 2)};
  const std::span<const std::span<const T>> tensors(pieces);
  gc::sparse_vector<T> ref, got;
  gc::compress_model(gc::exec::seq, gc::top_k{.k = 3000}, tensors, ref);
  for (const std::size_t stale : stale_counts(ref.nnz())) {
    fill_stale(got, stale);
    gc::compress_model(gc::exec::par.with_min_parallel_size(0), gc::top_k{.k = 3000}, tensors, got);
    check_same_sparse(ref, got);
  }
  gc::compress_model(gc::exec::seq, gc::hard_threshold{.lambda = 2.0}, tensors, ref);
  for (const std::size_t stale : stale_counts(ref.nnz())) {
    fill_stale(got, stale);
    gc::compress_model(gc::exec::par.with_min_parallel_size(0), gc::hard_threshold{.lambda = 2.0}, tensors, got);
    check_same_sparse(ref, got);
  }
}

TEST_CASE_TEMPLATE("par top_k: misleading samples on every size and thread count", T, GRADCOMP_PAR_FLOATS) {
  for (const std::size_t d : {std::size_t{1} << 15, std::size_t{65537}, std::size_t{3 * 65536 + 4099}}) {
    CAPTURE(d);
    for (const bool high : {true, false}) {
      const std::vector<T> x = misleading_input<T>(d, high, d);
      for (const std::size_t k : {std::size_t{1}, std::size_t{100}, d / 100, d / 10, d / 2}) check_top_k(x, k);
    }
  }
}

TEST_CASE("par top_k: ties at the k-th magnitude go to the lowest indices") {
  // 5 groups of equal magnitudes, interleaved over the whole input.
  const std::size_t d = 400000;
  std::vector<float> x(d);
  for (std::size_t i = 0; i < d; ++i) x[i] = (i % 3 ? 1.0f : -1.0f) * static_cast<float>(1 + (i * 7) % 5);
  for (const std::size_t k : {1, 79999, 80000, 80001, 123457, 160000, 399999}) {
    CAPTURE(k);
    gc::sparse_vector<float> got;
    gc::compress(gc::exec::par.with_min_parallel_size(0), gc::top_k{.k = k}, x, got);
    REQUIRE(got.nnz() == k);
    // The smallest magnitude kept is the k-th; every larger one is kept, and the kept ties
    // are the lowest-indexed ones.
    float kth = 1e30f;
    for (const float v : got.values) kth = std::min(kth, std::fabs(v));
    std::size_t ties_seen = 0, kept_ties = 0, larger = 0;
    std::size_t j = 0;
    bool gap = false;
    for (std::size_t i = 0; i < d; ++i) {
      const bool kept = j < got.nnz() && got.indices[j] == i;
      if (kept) ++j;
      const float m = std::fabs(x[i]);
      if (m > kth) {
        CHECK(kept);
        ++larger;
      } else if (m == kth) {
        ++ties_seen;
        if (kept) {
          CHECK_FALSE(gap);  // no dropped tie before a kept one
          ++kept_ties;
        } else {
          gap = true;
        }
      } else {
        CHECK_FALSE(kept);
      }
    }
    CHECK(larger + kept_ties == k);
    check_top_k(x, k);
  }
}

TEST_CASE_TEMPLATE("par top_k: errors match seq and leave out unchanged", T, GRADCOMP_PAR_FLOATS) {
  std::vector<T> x(300, T(1));
  gc::sparse_vector<T> out;
  gc::compress(gc::exec::par, gc::top_k{.k = 5}, x, out);
  const gc::sparse_vector<T> before = out;
  std::string seq_msg, par_msg;
  try {
    gc::compress(gc::exec::seq, gc::top_k{.k = 0}, x, out);
  } catch (const gc::error& e) {
    seq_msg = e.what();
  }
  try {
    gc::compress(gc::exec::par, gc::top_k{.k = 0}, x, out);
  } catch (const gc::error& e) {
    par_msg = e.what();
  }
  CHECK(seq_msg.find("k must be >= 1") != std::string::npos);
  CHECK(par_msg == seq_msg);
  CHECK(out == before);

  gc::sparse_vector<T, std::uint8_t> small_index, small_before;
  std::string seq_fit, par_fit;
  try {
    gc::compress(gc::exec::seq, gc::top_k{.k = 3}, x, small_index);
  } catch (const gc::error& e) {
    seq_fit = e.what();
  }
  try {
    gc::compress(gc::exec::par, gc::top_k{.k = 3}, x, small_index);
  } catch (const gc::error& e) {
    par_fit = e.what();
  }
  CHECK(seq_fit.find("does not fit the index type") != std::string::npos);
  CHECK(par_fit == seq_fit);
  CHECK(small_index == small_before);
  // 256 elements fit 8-bit indices exactly.
  std::vector<T> fits(256, T(2));
  gc::compress(gc::exec::par, gc::top_k{.k = 300}, fits, small_index);
  CHECK(small_index.nnz() == 256);
  CHECK(small_index.indices.back() == 255);
}

TEST_CASE("par top_k: repeated calls reuse scratch memory and stay exact") {
  const std::size_t d = std::size_t{1} << 20;
  gc::sparse_vector<float> ref, got;
  for (int call = 0; call < 6; ++call) {
    CAPTURE(call);
    const auto kind = call % 2 ? gt::input_kind::heavy_tailed : gt::input_kind::normal;
    const std::vector<float> x = gt::make_input<float>(kind, d, static_cast<std::uint64_t>(call));
    const std::size_t k = call % 3 == 0 ? 100 : d / 50;
    gc::compress(gc::exec::seq, gc::top_k{.k = k}, x, ref);
    gc::compress(gc::exec::par.with_min_parallel_size(0), gc::top_k{.k = k}, x, got);
    check_same_sparse(ref, got);
  }
}

// ---------------------------------------------------------------------------------------
// The fused error-feedback step.

namespace {

/// Runs error_feedback<top_k> on seq and on policy over the gradients, checking after every
/// step that the message, the residual and the metrics are the same; a gradient holding NaN
/// or Inf must be rejected alike by both, leaving both residuals as they were.
template <class T, class Index = std::uint32_t>
void check_feedback(const gc::exec::par_t& policy, std::size_t d, std::size_t k,
                    const std::vector<std::vector<T>>& gradients) {
  using ef_t = gc::error_feedback<gc::top_k, T, gc::sparse_vector<T, Index>>;
  ef_t ref(gc::top_k{.k = k}, d), got(gc::top_k{.k = k}, d);
  for (std::size_t step = 0; step < gradients.size(); ++step) {
    CAPTURE(step);
    const T scale = step % 2 == 0 ? T(1) : T(0.3);  // the e + g path and the e + scale * g path
    const std::span<const T> g(gradients[step]);
    if (std::any_of(g.begin(), g.end(), [](T v) { return !std::isfinite(v); })) {
      const std::vector<T> before(got.error().begin(), got.error().end());
      check_same_error([&] { ref.compress(gc::exec::seq, g, scale); }, [&] { got.compress(policy, g, scale); });
      CHECK(gt::same_result(std::span<const T>(before), got.error()));
      REQUIRE(gt::same_result(ref.error(), got.error()));
      continue;
    }
    const auto& m_ref = ref.compress(gc::exec::seq, g, scale);
    const auto& m_got = got.compress(policy, g, scale);
    check_same_sparse(m_ref, m_got, /*computed=*/true);  // values are p = e + scale * g
    REQUIRE(gt::same_result(ref.error(), got.error()));
    CHECK(ref.metrics().elements_sent == got.metrics().elements_sent);
    CHECK(ref.metrics().wire_bytes == got.metrics().wire_bytes);
    CHECK(gt::same_result(ref.metrics().total_error, got.metrics().total_error));
  }
}

}  // namespace

TEST_CASE_TEMPLATE("par error_feedback<top_k>: fused step bit-identical to seq over many steps", T, GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const std::size_t d : par_sizes()) {
      CAPTURE(d);
      std::vector<std::vector<T>> gradients;
      for (std::size_t step = 0; step < 4; ++step) {
        const auto kind = gt::all_input_kinds[(step + d) % std::size(gt::all_input_kinds)];
        gradients.push_back(gt::make_input<T>(kind, d, d * 7 + step));
      }
      place_specials(gradients.back(), d + 3, 1 + d / 5000);  // last step: NaN and Inf in g
      for (const std::size_t k : {std::size_t{1}, d / 1000 + 1, d / 20 + 1, d / 2 + 1, std::max<std::size_t>(d, 1)}) {
        CAPTURE(k);
        for (const auto& policy : policies()) {
          CAPTURE(policy_name(policy));
          check_feedback<T>(policy, d, k, gradients);
        }
      }
    }
  });
}

TEST_CASE_TEMPLATE("par error_feedback<top_k>: every path of the fused step", T, GRADCOMP_PAR_FLOATS) {
  const std::size_t d = std::size_t{1} << 20;
  const auto policy = gc::exec::par.with_min_parallel_size(0);
  for_each_thread_count([&] {
    const std::vector<T> normal = gt::make_input<T>(gt::input_kind::normal, d, 8);
    const std::vector<T> equal = gt::make_input<T>(gt::input_kind::all_equal, d, 8);
    const std::vector<T> levels = gt::make_input<T>(gt::input_kind::levels_256, d, 8);
    const std::vector<T> high = misleading_input<T>(d, true, 9);  // e starts at 0: p = scale * g
    const std::vector<T> low = misleading_input<T>(d, false, 10);
    // The first step sees p = g (the residual starts at 0), so it takes the path g forces:
    // too few candidates, far too many, heavy ties, k near d. Later steps mix paths, the
    // residual carrying over between them.
    check_feedback<T>(policy, d, d / 100, {high, normal, equal, low, levels, normal});
    check_feedback<T>(policy, d, 100, {low, normal, equal, equal});
    check_feedback<T>(policy, d, 5000, {equal, high});
    check_feedback<T>(policy, d, d - 2, {normal, levels});
    check_feedback<T, std::uint64_t>(policy, d, 3000, {high, levels});
    // The paths the first steps above take, through the fused kernel itself.
    const std::vector<T> zero(d, T(0));
    std::vector<T> e_new(d);
    gc::sparse_vector<T> out;
    const auto path = [&](const std::vector<T>& g, std::size_t k) {
      out.reset(d);
      return cd::top_k_by_sample(policy, cd::feedback_source<T>{zero, g, T(1), e_new}, k, out);
    };
    CHECK(path(high, d / 100) == cd::top_k_path::fallback_few);
    CHECK(gt::same_bits(e_new, high));  // the pass wrote p = g everywhere before giving up
    CHECK(path(low, 100) == cd::top_k_path::fallback_cap);
    CHECK(gt::same_bits(e_new, low));   // skipped chunks too
    CHECK(path(equal, 5000) == cd::top_k_path::fallback_direct);
    CHECK(path(normal, d / 100) == cd::top_k_path::sampled);
  });
}

TEST_CASE("par error_feedback<top_k>: errors leave the residual unchanged") {
  gc::error_feedback<gc::top_k> ef(gc::top_k{.k = 3}, 100000);
  std::vector<float> g = gt::make_input<float>(gt::input_kind::normal, 100000, 1);
  ef.compress(gc::exec::par, std::span<const float>(g), 0.25f);
  const std::vector<float> before(ef.error().begin(), ef.error().end());
  ef.base().k = 0;
  CHECK_THROWS_WITH_AS(ef.compress(gc::exec::par, std::span<const float>(g), 1.0f), doctest::Contains("k must be >= 1"),
                       gc::error);
  std::vector<float> wrong(11, 1.0f);
  ef.base().k = 3;
  CHECK_THROWS_AS(ef.compress(gc::exec::par, std::span<const float>(wrong), 1.0f), gc::error);
  CHECK(gt::same_result(std::span<const float>(before), ef.error()));
  CHECK(ef.metrics().steps == 1);
}
