#pragma once
// sign: C(x)_i = sign(x_i) times a fixed scale (1 by default): signSGD's message (Bernstein
// et al. 2018). No bound.
#include <algorithm>
#include <cmath>
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

/// C(x)_i = -scale if x_i < 0, else +scale (sign(0) = +1, NaN counts as +1): one bit per
/// element and one scale, 1 by default. The receiver's step size is the scale times
/// decompress_add's alpha, as in signSGD; a scheme that puts the learning rate inside the
/// compressed quantity (ef_sgd) takes the step size here instead: Signum is ef_sgd with lr 1
/// and no error feedback over momentum<sign{.scale = lr}> (the sign of beta m + (1 - beta) g
/// is the sign of the undamped beta m + g). It is in none of the three
/// categories: ||x - sign(x)||^2 is not bounded by a multiple of ||x||^2 below 1 (x = eps e_1
/// gives about d), nor by a constant (x = t 1 gives d (t - 1)^2), and E sign(x) != x. Use
/// scaled_sign under error feedback (EF-signSGD, Karimireddy et al. 2019) for a contraction.
struct sign {
  static constexpr std::string_view name = "sign";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  double scale = 1.0;  // the magnitude of every element: finite and > 0, also once rounded to T

  template <std::floating_point T>
  using payload_type = sign_vector<T>;

  /// The scale as T; throws gc::error if it is not finite and > 0 there.
  template <std::floating_point T>
  T scale_as() const {
    const T s = static_cast<T>(scale);
    if (!(std::isfinite(scale) && scale > 0.0 && std::isfinite(s) && s > T(0)))
      detail::fail("sign", "scale must be finite and > 0 in the value type (got ", scale, ")");
    return s;
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, sign_vector<T>& out) const {
    const T s = scale_as<T>();
    out.reset(x.size(), std::max<std::size_t>(x.size(), 1));
    if (!x.empty()) out.scales[0] = s;
    detail::pack_sign_bits(x, out);
  }
};

}  // namespace gradcomp
