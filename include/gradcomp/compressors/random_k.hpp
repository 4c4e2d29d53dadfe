#pragma once
// Random-k: keep k entries chosen uniformly at random, the same ones on every worker.
#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/bits.hpp"
#include "../detail/random.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/seeded_sparse.hpp"

namespace gradcomp {

namespace detail {

/// unbiased_random_k's overflow rule for scaled = T(d/k) * x: a finite x whose scaled value
/// overflowed to +-inf is sent as +-max(T) instead, so finite input never decodes to inf (a
/// bias only for |x| > max(T) / T(d/k)). A NaN or infinite x is sent as it is, as every
/// sparsifier does. (Bit operations only: the CUDA kernels share it.)
template <std::floating_point T>
GRADCOMP_HD constexpr T saturate_scaled(T scaled, T x) noexcept {
  using U = uint_of<T>;
  constexpr U sign = U{1} << (sizeof(T) * 8 - 1);
  constexpr U inf_key = magnitude_key(std::numeric_limits<T>::infinity());
  if (magnitude_key(scaled) != inf_key || magnitude_key(x) >= inf_key) return scaled;  // not inf, or x not finite
  return std::bit_cast<T>(static_cast<U>((std::bit_cast<U>(scaled) & sign) | magnitude_key(std::numeric_limits<T>::max())));
}

/// One kept value of random_k (x_i) or of unbiased_random_k (scale * x_i, saturated).
template <bool Unbiased, std::floating_point T>
GRADCOMP_HD constexpr T random_k_value(T x, T scale) noexcept {
  if constexpr (Unbiased)
    return saturate_scaled(scale * x, x);
  else
    return x;
}

}  // namespace detail

/// Keeps min(k, d) entries whose indices are drawn without replacement from the shared
/// (seed, step) stream, then advances step. Workers constructed with the same seed and
/// called once per step pick the same indices, so the indices need not be sent.
///
/// Unscaled (random_k): a delta-contraction in expectation, E||x - C(x)||^2 = (1-k/d)||x||^2.
/// Scaled by d/k (unbiased_random_k): unbiased, with omega = d/k - 1, except that a value
/// whose scaled x_i would overflow T is sent as +-max(T) (detail::saturate_scaled).
template <bool Unbiased>
struct basic_random_k {
  static constexpr std::string_view name = Unbiased ? "unbiased_random_k" : "random_k";
  static constexpr aggregation_class aggregation = aggregation_class::allreduce;

  std::size_t k = 1;
  std::uint64_t seed = 0;
  std::uint64_t step = 0;

  template <std::floating_point T>
  using payload_type = seeded_sparse_vector<T>;

  void validate() const {
    if (k == 0) detail::fail(name.data(), "k must be >= 1 (got 0)");
  }

  double delta(std::size_t d) const
    requires(!Unbiased)
  {
    return d == 0 ? 1.0 : static_cast<double>(std::min(k, d)) / static_cast<double>(d);
  }

  double omega(std::size_t d) const
    requires Unbiased
  {
    return d == 0 ? 0.0 : static_cast<double>(d) / static_cast<double>(std::min(k, d)) - 1.0;
  }

  template <std::floating_point T, class Index>
  void compress(exec::seq_t, std::span<const T> x, seeded_sparse_vector<T, Index>& out) {
    validate();
    detail::check_index_fits<Index>(x.size(), name.data());
    const std::size_t d = x.size();
    const std::size_t kept = std::min(k, d);
    detail::shared_random_indices(d, kept, seed, step, out.indices);
    // Scaling by d/k makes every entry's expectation x_i: each index is kept with
    // probability k/d.
    const T scale = Unbiased && kept > 0 ? static_cast<T>(static_cast<double>(d) / static_cast<double>(kept)) : T(1);
    out.values.resize(kept);
    for (std::size_t j = 0; j < kept; ++j) out.values[j] = detail::random_k_value<Unbiased>(x[out.indices[j]], scale);
    out.dim = d;
    out.seed = seed;
    out.step = step;
    ++step;
  }
};

using random_k = basic_random_k<false>;
using unbiased_random_k = basic_random_k<true>;

}  // namespace gradcomp
