#pragma once
// Where Top-k's k-th largest magnitude probably lies, from a deterministic sample.
//
// The sample is m elements taken as evenly spaced runs of contiguous elements, so each run
// is a few cache lines read sequentially (cheap at any size, unlike m scattered reads), and
// the same input always gives the same sample. If the k-th largest key of n elements is at
// rank r = k m / n of the sample, its sample rank varies by about sigma = sqrt(r (1 - k/n));
// taking the sample key about 4 sigma further down gives a bound that every element of the
// top k clears, unless the input is adversarial to the sample (then the caller falls back).
// The result only steers speed: Top-k stays exact whatever the sample says.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "radix_select.hpp"
#include "tuning.hpp"
#include "workspace.hpp"
#include "abi.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

inline constexpr std::size_t sample_run = tuning::top_k::sample_run;

/// Sample size for n elements (tuning::top_k): a fraction of the input, clamped, in whole
/// runs.
constexpr std::size_t sample_size(std::size_t n) noexcept {
  using tune = tuning::top_k;
  const std::size_t m = std::clamp<std::size_t>(n / tune::sample_fraction, tune::sample_min, tune::sample_max);
  return std::min(n, m / sample_run * sample_run);
}

/// Calls f(begin, length) for every run of the sample of [0, n), in index order. Run r
/// starts at floor(r n / runs).
template <class F>
void for_each_sample_run(std::size_t n, F&& f) {
  const std::size_t m = sample_size(n);
  if (m == 0) return;
  const std::size_t runs = (m + sample_run - 1) / sample_run;
  const std::size_t q = n / runs, rem = n % runs;
  for (std::size_t r = 0; r < runs; ++r) {
    const std::size_t begin = r * q + r * rem / runs;  // floor(r n / runs) without overflow
    f(begin, std::min(sample_run, n - begin));
  }
}

/// What the sample says about the k-th largest key.
template <class U>
struct candidate_bounds {
  U bound;                // every element with key >= bound is a candidate
  U upper;                // the k-th largest key is most likely <= upper
  std::size_t expected;   // candidates expected (from the sample keys >= bound)
};

inline constexpr double sample_sigmas = tuning::top_k::sample_sigmas;

/// The candidate bounds for the k-th largest of n keys (k < n) from sample keys, or nullopt
/// when a candidate pass would not pay: k so close to n that the bound would admit (almost)
/// everything, or ties in the sample showing that a good part of the input shares the
/// bound's magnitude (the exact radix path handles both directly).
template <class U>
std::optional<candidate_bounds<U>> estimate_candidate_bounds(workspace& ws, std::span<const U> sample, std::size_t k,
                                                             std::size_t n) {
  const std::size_t m = sample.size();
  if (m == 0 || k >= n) return std::nullopt;
  const double rank = static_cast<double>(k) * static_cast<double>(m) / static_cast<double>(n);
  const double sigma = std::sqrt(rank * (1.0 - static_cast<double>(k) / static_cast<double>(n)));
  const double low_rank = std::ceil(rank + sample_sigmas * sigma + 2.0);
  if (low_rank >= static_cast<double>(m)) return std::nullopt;
  const auto bound_rank = static_cast<std::size_t>(low_rank);
  const auto upper_rank = static_cast<std::size_t>(std::max(1.0, std::floor(rank - sample_sigmas * sigma - 2.0)));

  pooled_array<U> scratch(ws, m);
  std::copy(sample.begin(), sample.end(), scratch.data());
  const U bound = select_kth_largest(scratch.span(), bound_rank).key;
  // The upper estimate is among the (few) sample keys >= bound: select it there.
  std::size_t at_least_bound = 0;
  for (const U key : sample) {  // branch-free: one store per key
    scratch.data()[at_least_bound] = key;
    at_least_bound += key >= bound;
  }
  const double expected = static_cast<double>(at_least_bound) * static_cast<double>(n) / static_cast<double>(m);
  // Ties at the bound make the candidates several times what the margin allows for: still
  // worth a candidate pass while they are few next to n (|x| in [1, 1.00003] has 250 tie
  // groups), not when a tie group is a good part of the input (all equal, 4 levels).
  if (at_least_bound > 2 * bound_rank + 16 && expected > static_cast<double>(n) / 16) return std::nullopt;
  const U upper = select_kth_largest(std::span<U>(scratch.data(), at_least_bound), upper_rank).key;
  return candidate_bounds<U>{bound, upper, static_cast<std::size_t>(std::ceil(expected))};
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
