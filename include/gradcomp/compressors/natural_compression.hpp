#pragma once
// Natural compression (Horvath, Ho, Horvath, Sahu, Canini, Richtarik 2019, "Natural
// compression for distributed deep learning"): unbiased stochastic rounding of every entry to
// a power of two, so only its sign and exponent are sent (9 bits for float, 12 for double).
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../aggregation.hpp"
#include "../detail/finite.hpp"
#include "../detail/float_codes.hpp"
#include "../detail/random.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../payload/float_code.hpp"

namespace gradcomp {

/// C(x)_i for |x_i| in [2^a, 2^(a+1)) is sign(x_i) 2^a or sign(x_i) 2^(a+1), the upper one
/// with probability (|x_i| - 2^a) / 2^a, decided by draw i of the (seed, step) counter stream
/// (detail::natural_code: the fraction is T's mantissa field over 2^M, so the comparison with
/// the draw is exact and the probability is the fraction itself). Zeros (of either sign) and
/// powers of two are kept. A subnormal |x_i| < 2^emin becomes 0 or 2^emin, the upper one with
/// probability |x_i| / 2^emin. So E C(x) = x exactly.
///
/// Variance: a normal entry with fraction f has variance 4^a f (1 - f) <= x_i^2 / 8 (the
/// maximum of f (1 - f) / (1 + f)^2 is 1/8, at f = 1/3), hence omega = 1/8 as in the paper; a
/// subnormal entry adds at most 2^(2 emin) / 4 (2^-254 for float, 2^-2046 for double), not
/// relative to x_i, so E||C(x) - x||^2 <= ||x||^2 / 8 + (number of subnormal entries) 2^(2 emin) / 4.
///
/// step advances on every successful call. NaN or Inf input throws naming the first bad index.
/// Finite input decodes to finite values or throws before anything is written: an entry in
/// T's top binade that is not a power of two could round up to 2^(emax + 1), which T cannot
/// hold, so it is rejected whatever the draws (as qsgd rejects levels that could overflow).
struct natural_compression {
  static constexpr std::string_view name = "natural_compression";
  static constexpr aggregation_class aggregation = aggregation_class::gather;

  std::uint64_t seed = 0;
  std::uint64_t step = 0;

  template <std::floating_point T>
  using payload_type = float_code_vector<T>;

  /// Every field value is valid; here for uniformity with the other compressors.
  void validate() const noexcept {}

  double omega(std::size_t) const noexcept { return 1.0 / 8.0; }

  /// Fails naming the first non-finite entry, then the first entry that could round up to Inf.
  template <std::floating_point T>
  void check_input(std::span<const T> x) const {
    detail::require_finite(x, name.data());
    for (std::size_t i = 0; i < x.size(); ++i)
      if (detail::natural_may_overflow(x[i])) fail_overflow(i, x[i]);
  }

  template <std::floating_point T>
  [[noreturn]] void fail_overflow(std::size_t i, T x) const {
    detail::fail(name.data(), "x[", i, "] = ", x, " is in the top binade of the value type and not a power of two, so it ",
                 "could round up to 2^", detail::ieee_layout<T>::emax + 1,
                 ", which overflows the value type: scale the input down");
  }

  template <std::floating_point T>
  void compress(exec::seq_t, std::span<const T> x, float_code_vector<T>& out) {
    validate();
    check_input(x);

    out.dim = x.size();
    out.format = code_format::power_of_two;
    out.scale_exponent = 0;
    out.codes.resize(x.size());
    const detail::counter_stream stream(seed, step);
    for (std::size_t i = 0; i < x.size(); ++i) out.codes[i] = detail::natural_code(x[i], stream.uniform(i));
    ++step;
  }
};

}  // namespace gradcomp
