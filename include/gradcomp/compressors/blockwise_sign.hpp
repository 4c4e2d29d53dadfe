#pragma once
// Blockwise sign: scaled sign applied to each block of B elements with its own scale.
// A delta-contraction with delta = 1/min(B, d).
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/sign_kernel.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/sign.hpp"

namespace gradcomp {

/// Each block b of n_b <= B elements loses ||x_b||_1^2 / n_b >= ||x_b||^2 / B, so
/// ||x - C(x)||^2 <= (1 - 1/B) ||x||^2 (Zheng et al. 2019; used by LIEC-SGD).
struct blockwise_sign {
  static constexpr std::string_view name = "blockwise_sign";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  std::size_t block_size = 256;

  template <std::floating_point T>
  using payload_type = sign_vector<T>;

  void validate() const {
    if (block_size == 0) detail::fail("blockwise_sign", "block_size must be >= 1 (got 0)");
  }

  double delta(std::size_t d) const {
    const std::size_t widest = std::min(block_size, d);
    return widest == 0 ? 1.0 : 1.0 / static_cast<double>(widest);
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, sign_vector<T>& out) const {
    validate();
    detail::sign_compress(x, block_size, out);
  }
};

}  // namespace gradcomp
