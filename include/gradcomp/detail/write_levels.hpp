#pragma once
// The loop that writes a quantized payload's levels, shared by the quantizers' references.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../payload/quantized.hpp"
#include "bitpack.hpp"

namespace gradcomp::detail {

/// out = the payload of dimension x.size() whose element i is scale * level_of(x_i, i) under
/// coding, or all levels 0 when scale is 0; level_bits is the fewest bits that hold their codes.
/// Every quantizer writes its levels through this loop (and back ends through its equals).
template <std::floating_point T, class LevelOf>
void write_levels(std::span<const T> x, T scale, level_coding coding, LevelOf&& level_of, quantized_vector<T>& out) {
  out.dim = x.size();
  out.scale = scale;
  out.coding = coding;
  out.levels.resize(x.size());
  std::uint32_t coded_or = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::int32_t level = 0;
    if (scale > T(0)) level = level_of(x[i], i);
    out.levels[i] = level;
    coded_or |= level_code(level, coding);
  }
  out.level_bits = bits_to_hold(coded_or);
}

}  // namespace gradcomp::detail
