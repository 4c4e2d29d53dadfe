#pragma once
// Top-k: keep the k entries of largest magnitude. A delta-contraction with delta = k/d.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "../aggregation.hpp"
#include "../detail/bits.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/sparse.hpp"

namespace gradcomp {

/// C(x) keeps exactly min(k, d) entries: those of largest magnitude, ranked by
/// detail::magnitude_key (so NaN ranks above +Inf), ties at the k-th magnitude going to the
/// lower index. The dropped entries are the d - k smallest, so
/// ||x - C(x)||^2 <= (1 - k/d) ||x||^2 for every x.
struct top_k {
  static constexpr std::string_view name = "top_k";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  std::size_t k = 1;

  template <std::floating_point T>
  using payload_type = sparse_vector<T>;

  void validate() const {
    if (k == 0) detail::fail("top_k", "k must be >= 1 (got 0)");
  }

  double delta(std::size_t d) const { return d == 0 ? 1.0 : static_cast<double>(std::min(k, d)) / static_cast<double>(d); }

  template <std::floating_point T, class Index>
  void compress(exec::seq_t, std::span<const T> x, sparse_vector<T, Index>& out) const {
    validate();
    detail::check_index_fits<Index>(x.size(), "top_k");
    const std::size_t d = x.size();
    const std::size_t kept = std::min(k, d);
    out.reset(d);
    if (kept == 0) return;
    out.indices.reserve(kept);
    out.values.reserve(kept);

    // The k-th largest magnitude key: everything above it is kept, and as many entries
    // equal to it as are needed to reach k, lowest indices first.
    using U = detail::uint_of<T>;
    std::vector<U> keys(d);
    for (std::size_t i = 0; i < d; ++i) keys[i] = detail::magnitude_key(x[i]);
    std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(kept - 1), keys.end(), std::greater<>{});
    const U threshold = keys[kept - 1];
    std::size_t above = 0;
    for (std::size_t i = 0; i < d; ++i) above += detail::magnitude_key(x[i]) > threshold;
    std::size_t ties_left = kept - above;

    for (std::size_t i = 0; i < d; ++i) {
      const U key = detail::magnitude_key(x[i]);
      if (key > threshold || (key == threshold && ties_left > 0)) {
        if (key == threshold) --ties_left;
        out.indices.push_back(static_cast<Index>(i));
        out.values.push_back(x[i]);
      }
    }
  }
};

}  // namespace gradcomp
