#pragma once
// Scaled sign: C(x) = (||x||_1 / d) sign(x). A delta-contraction with delta = 1/d.
#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/sign_kernel.hpp"
#include "../execution.hpp"
#include "../payload/sign.hpp"

namespace gradcomp {

/// ||x - C(x)||^2 = ||x||^2 - ||x||_1^2 / d <= (1 - 1/d) ||x||^2, since ||x||_1 >= ||x||_2.
/// Sends one scale and d bits (Karimireddy et al. 2019, "Error feedback fixes SignSGD").
struct scaled_sign {
  static constexpr std::string_view name = "scaled_sign";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  template <std::floating_point T>
  using payload_type = sign_vector<T>;

  double delta(std::size_t d) const { return d == 0 ? 1.0 : 1.0 / static_cast<double>(d); }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, sign_vector<T>& out) const {
    detail::sign_compress(x, x.empty() ? std::size_t{1} : x.size(), out);
  }
};

}  // namespace gradcomp
