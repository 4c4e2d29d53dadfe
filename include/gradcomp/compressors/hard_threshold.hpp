#pragma once
// Hard-threshold: keep every entry with |x_i| >= lambda. An absolute compressor with
// ||x - C(x)||^2 <= d * lambda^2.
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/bits.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/sparse.hpp"

namespace gradcomp {

/// C(x)_i = x_i if |x_i| >= lambda, else 0. The count sent varies from step to step; that is
/// the point (Sahu et al. 2021): under error feedback the threshold sends many entries when
/// the error is large and few when it is small, keeping the total error low. NaN entries
/// are kept (|NaN| < lambda is false), so they reach the receiver instead of hiding in a
/// residual.
struct hard_threshold {
  static constexpr std::string_view name = "hard_threshold";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  double lambda = 0.0;

  template <std::floating_point T>
  using payload_type = sparse_vector<T>;

  /// The threshold the paper's authors use to send about the volume of Top-k with this k:
  /// lambda = 1 / (2 sqrt(k)).
  static hard_threshold matching_top_k(std::size_t k) {
    if (k == 0) detail::fail("hard_threshold::matching_top_k", "k must be >= 1 (got 0)");
    return hard_threshold{.lambda = 1.0 / (2.0 * std::sqrt(static_cast<double>(k)))};
  }

  void validate() const {
    if (!(lambda >= 0.0)) detail::fail("hard_threshold", "lambda must be >= 0 and not NaN (got ", lambda, ")");
  }

  /// Every dropped entry has |x_i| < lambda, so ||x - C(x)||^2 < d lambda^2 (rounded up).
  double absolute_bound(std::size_t d) const {
    return detail::product_upper_bound(static_cast<double>(d), lambda, lambda);
  }

  template <std::floating_point T, class Index>
  void compress(exec::seq_t, std::span<const T> x, sparse_vector<T, Index>& out) const {
    validate();
    detail::check_index_fits<Index>(x.size(), "hard_threshold");
    out.reset(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!(std::fabs(static_cast<double>(x[i])) < lambda)) {
        out.indices.push_back(static_cast<Index>(i));
        out.values.push_back(x[i]);
      }
    }
  }
};

}  // namespace gradcomp
