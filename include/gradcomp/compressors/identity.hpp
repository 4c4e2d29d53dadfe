#pragma once
// Identity: no compression. The baseline every comparison needs; it satisfies every
// category trivially.
#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../execution.hpp"
#include "../payload/dense.hpp"

namespace gradcomp {

struct identity {
  static constexpr std::string_view name = "identity";
  static constexpr aggregation_class aggregation = aggregation_class::allreduce;

  template <std::floating_point T>
  using payload_type = dense_vector<T>;

  double delta(std::size_t) const { return 1.0; }
  double omega(std::size_t) const { return 0.0; }
  double absolute_bound(std::size_t) const { return 0.0; }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, dense_vector<T>& out) const {
    out.values.assign(x.begin(), x.end());
  }
};

}  // namespace gradcomp
