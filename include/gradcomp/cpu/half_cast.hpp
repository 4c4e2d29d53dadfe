#pragma once
// float16_cast and bfloat16_cast on exec::par: max|x| as a parallel reduction of magnitude
// keys, then every element's code in parallel with the reference's rounding
// (detail::round_to_half).
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

#include "../compressors/half_cast.hpp"
#include "../detail/bits.hpp"
#include "../detail/float_codes.hpp"
#include "../payload/float_code.hpp"
#include "max_magnitude.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "tuning.hpp"

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// half_cast on exec::par; bit-identical to exec::seq, with the same errors.
template <code_format Format, std::floating_point T>
void compress_with(const par_t& policy, const half_cast<Format>& c, std::span<const T> x, float_code_vector<T>& out) {
  c.validate();
  const auto largest = cpu::detail::max_magnitude_key(policy, x);
  const T max_abs = std::bit_cast<T>(largest);  // |x_i| of the largest key: max|x| when finite
  const bool finite = largest < gradcomp::detail::magnitude_key(std::numeric_limits<T>::infinity());
  const std::int32_t e = finite ? c.scale_exponent_for(max_abs) : 0;
  if (!finite || !c.decodes_finite(max_abs, e)) {
    // NaN or Inf input, or a code that overflows: the reference raises its error (naming the
    // first bad entry) before writing anything.
    c.compress(seq, x, out);
    return;
  }
  out.codes.resize(x.size());
  std::uint16_t* codes = out.codes.data();
  cpu::detail::for_each_chunk(policy, x.size(), cpu::tuning::elementwise::chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                for (std::size_t i = begin; i < end; ++i)
                                  codes[i] = gradcomp::detail::round_to_half(Format, x[i], e);
                              });
  out.dim = x.size();
  out.format = Format;
  out.scale_exponent = e;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
