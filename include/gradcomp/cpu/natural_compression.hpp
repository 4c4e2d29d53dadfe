#pragma once
// natural_compression on exec::par: one parallel reduction of magnitude keys decides whether
// the input is acceptable (finite, nothing in T's top binade that could round up to Inf), then
// every element's code in parallel with the reference's rule and counter-stream draws
// (detail::natural_code, draw i for element i).
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/natural_compression.hpp"
#include "../detail/float_codes.hpp"
#include "../detail/random.hpp"
#include "../payload/float_code.hpp"
#include "max_magnitude.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "tuning.hpp"

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// natural_compression on exec::par; bit-identical to exec::seq for the same seed and step,
/// and advances step the same way (not at all on error).
template <std::floating_point T>
void compress_with(const par_t& policy, natural_compression& c, std::span<const T> x, float_code_vector<T>& out) {
  c.validate();
  // natural_may_overflow is monotone in the magnitude key and holds for NaN and Inf, so the
  // entry with the largest key decides whether any entry is rejected.
  const T largest = std::bit_cast<T>(cpu::detail::max_magnitude_key(policy, x));
  if (gradcomp::detail::natural_may_overflow(largest)) {
    c.compress(seq, x, out);  // raises the reference's error (the first bad entry); nothing written
    return;
  }
  const gradcomp::detail::counter_stream stream(c.seed, c.step);
  out.codes.resize(x.size());
  std::uint16_t* codes = out.codes.data();
  cpu::detail::for_each_chunk(policy, x.size(), cpu::tuning::elementwise::chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                for (std::size_t i = begin; i < end; ++i)
                                  codes[i] = gradcomp::detail::natural_code(x[i], stream.uniform(i));
                              });
  out.dim = x.size();
  out.format = code_format::power_of_two;
  out.scale_exponent = 0;
  ++c.step;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
