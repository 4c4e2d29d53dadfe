#pragma once
// sign: C(x)_i = sign(x_i), unscaled: signSGD's message (Bernstein et al. 2018). No bound.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/sign_kernel.hpp"
#include "../execution.hpp"
#include "../payload/sign.hpp"

namespace gradcomp {

/// C(x)_i = -1 if x_i < 0, else +1 (sign(0) = +1, NaN counts as +1): one bit per element and
/// one scale, 1. The receiver's step size is the scale (decompress_add's alpha), as in
/// signSGD, and Signum is this compressor on a momentum buffer (gc::momentum; the sign of
/// beta m + (1 - beta) g is the sign of the undamped beta m + g). It is in none of the three
/// categories: ||x - sign(x)||^2 is not bounded by a multiple of ||x||^2 below 1 (x = eps e_1
/// gives about d), nor by a constant (x = t 1 gives d (t - 1)^2), and E sign(x) != x. Use
/// scaled_sign under error feedback (EF-signSGD, Karimireddy et al. 2019) for a contraction.
struct sign {
  static constexpr std::string_view name = "sign";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  template <std::floating_point T>
  using payload_type = sign_vector<T>;

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, sign_vector<T>& out) const {
    out.reset(x.size(), std::max<std::size_t>(x.size(), 1));
    if (!x.empty()) out.scales[0] = T(1);
    detail::pack_sign_bits(x, out);
  }
};

}  // namespace gradcomp
