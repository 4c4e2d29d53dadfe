#pragma once
// quantized_vector: what quantizers (qsgd, terngrad, grid_rounding, dithering) send: one
// scale and a small signed integer level per element.
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "../detail/element_rules.hpp"
#include "../detail/bitpack.hpp"
#include "../detail/bits.hpp"
#include "../detail/strict_fp.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"

namespace gradcomp {

/// How a quantized payload writes its levels on the wire. Either way element i decodes to
/// scale * levels[i]; the coding only decides how few bits a level takes.
enum class level_coding : std::uint8_t {
  linear = 0,        // any level, as zigzag(level)
  power_of_two = 1,  // levels 0 and +-2^j (j <= 30) only, as zigzag(+-(j + 1)): natural dithering's
                     // s + 1 levels take about log2(s) + 2 bits instead of s + 1
};

namespace detail {

/// The largest exponent j of a power-of-two level 2^j (levels are int32).
inline constexpr unsigned max_level_exponent = 30;

/// |v| as an unsigned number (defined for INT32_MIN too).
GRADCOMP_HD constexpr std::uint32_t magnitude_of(std::int32_t v) noexcept {
  const auto u = static_cast<std::uint32_t>(v);
  return v < 0 ? 0u - u : u;
}

/// True when level is 0 or +-2^j with j <= max_level_exponent.
GRADCOMP_HD constexpr bool is_power_of_two_level(std::int32_t level) noexcept {
  const std::uint32_t magnitude = magnitude_of(level);
  return magnitude == 0 || (std::has_single_bit(magnitude) && magnitude <= (std::uint32_t{1} << max_level_exponent));
}

/// The wire code of a level under a coding (the level must be valid for it).
GRADCOMP_HD constexpr std::uint32_t level_code(std::int32_t level, level_coding coding) noexcept {
  if (coding == level_coding::linear || level == 0) return zigzag(level);
  const auto exponent_plus_one = static_cast<std::int32_t>(std::countr_zero(magnitude_of(level))) + 1;
  return zigzag(level < 0 ? -exponent_plus_one : exponent_plus_one);
}

/// The level a wire code stands for, or nothing when the code is not one (a power-of-two code
/// whose exponent exceeds max_level_exponent).
constexpr std::optional<std::int32_t> level_of_code(std::uint32_t code, level_coding coding) noexcept {
  const std::int32_t v = unzigzag(code);
  if (coding == level_coding::linear || v == 0) return v;
  const std::uint32_t exponent = magnitude_of(v) - 1;
  if (exponent > max_level_exponent) return std::nullopt;
  const std::int32_t magnitude = std::int32_t{1} << exponent;
  return v < 0 ? -magnitude : magnitude;
}

/// What a level of a quantized payload decodes to: scale * T(level), rounded once in T (as
/// quantized_vector::decompress_add computes it).
template <std::floating_point T>
GRADCOMP_HD T dequantize(T scale, std::int32_t level) noexcept {
  return scale * static_cast<T>(level);
}

/// True when every int32 level decodes to a finite value with this finite scale: |T(level)|
/// is at most 2^31, so scale * 2^31 finite suffices. Only scales within a factor 2^31 of T's
/// largest value fail this, and quantizers then check their input element by element.
template <std::floating_point T>
bool every_level_decodes_finite(T scale) noexcept {
  return std::isfinite(dequantize(scale, std::numeric_limits<std::int32_t>::min()));
}

/// The largest L in [0, 2^31 - 1] with dequantize(scale, L) finite, for a finite scale (then
/// dequantize(scale, -L) is finite too). Decoding is monotone in the level, so every level of
/// magnitude at most L decodes to a finite value and none above it does.
template <std::floating_point T>
std::int64_t largest_finite_level(T scale) noexcept {
  std::int64_t lo = 0, hi = std::numeric_limits<std::int32_t>::max();  // lo is finite
  while (lo < hi) {
    const std::int64_t mid = hi - (hi - lo) / 2;
    if (std::isfinite(dequantize(scale, static_cast<std::int32_t>(mid))))
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

}  // namespace detail

/// Element i decodes to scale * levels[i]. On the wire every level's code (level_coding) is
/// written in level_bits bits (1..32), packed LSB first: header, level_bits (u32), the coding
/// (u32: 0 linear, 1 power of two; before natural dithering this field was reserved and 0,
/// so every older message reads the same), scale, ceil(dim * level_bits / 8) bytes. The
/// compressor sets level_bits to the fewest bits that hold its levels' codes.
template <std::floating_point T>
struct quantized_vector {
  using value_type = T;

  std::size_t dim = 0;
  T scale = T(0);
  unsigned level_bits = 1;
  level_coding coding = level_coding::linear;
  std::vector<std::int32_t> levels;

  void validate(const char* where) const {
    if (levels.size() != dim) detail::fail(where, "quantized_vector has ", levels.size(), " levels for dim ", dim);
    if (level_bits < 1 || level_bits > 32)
      detail::fail(where, "quantized_vector level_bits ", level_bits, " is outside [1, 32]");
    if (coding != level_coding::linear && coding != level_coding::power_of_two)
      detail::fail(where, "quantized_vector coding ", static_cast<unsigned>(coding), " is not a level_coding");
    const std::uint64_t limit = std::uint64_t{1} << level_bits;
    for (std::size_t i = 0; i < dim; ++i) {
      if (coding == level_coding::power_of_two && !detail::is_power_of_two_level(levels[i]))
        detail::fail(where, "level ", levels[i], " at index ", i,
                     " is not 0 or +-2^j (j <= 30), as the power-of-two coding requires");
      if (detail::level_code(levels[i], coding) >= limit)
        detail::fail(where, "level ", levels[i], " at index ", i, " does not fit ", level_bits, " bits");
    }
  }

  GRADCOMP_NO_FP_CONTRACT void decompress_add(std::span<T> dense, T alpha = T(1)) const {
    GRADCOMP_NO_FP_CONTRACT_BODY
    if (levels.size() != dim) detail::fail("decompress_add", "quantized_vector has ", levels.size(), " levels for dim ", dim);
    if (dense.size() != dim)
      detail::fail("decompress_add", "dense size ", dense.size(), " does not match payload dim ", dim);
    for (std::size_t i = 0; i < dim; ++i) dense[i] = detail::add_scaled(dense[i], alpha, detail::dequantize(scale, levels[i]));
  }

  std::size_t sent_elements() const noexcept { return dim; }

  std::size_t wire_bytes() const {
    const char* where = "wire_bytes";
    const std::size_t bits = detail::checked_mul(dim, level_bits, where, "level bits");
    return detail::checked_add(detail::header_bytes + 8 + sizeof(T), detail::bytes_for_bits(bits), where, "payload");
  }

  std::size_t encode_to(std::span<std::byte> dst) const {
    validate("encode");
    const std::size_t nbytes = detail::bytes_for_bits(detail::checked_mul(dim, level_bits, "encode", "level bits"));
    detail::byte_writer w(dst, "encode");
    detail::put_header<T>(w, detail::wire_kind::quantized, 0, dim);
    w.put(static_cast<std::uint32_t>(level_bits));
    w.put(static_cast<std::uint32_t>(coding));
    w.put(scale);
    detail::pack_bits(dim, level_bits, [&](std::size_t i) { return detail::level_code(levels[i], coding); },
                      w.claim(nbytes));
    return w.written();
  }

  /// Replaces *this by the payload in src, or throws gc::error and leaves *this unchanged.
  void decode_from(std::span<const std::byte> src) {
    const char* where = "decode<quantized_vector>";
    detail::byte_reader r(src, where);
    const auto h = detail::get_header<T>(r, detail::wire_kind::quantized);
    if (h.index_bytes != 0) detail::fail(where, "malformed buffer: index width ", h.index_bytes, " (must be 0)");
    const auto bits = r.get<std::uint32_t>("level bits");
    // At least one bit per element, so dim is bounded by the buffer's size.
    if (bits < 1 || bits > 32) detail::fail(where, "malformed buffer: level_bits ", bits, " is outside [1, 32]");
    const auto coding_code = r.get<std::uint32_t>("level coding");
    if (coding_code > static_cast<std::uint32_t>(level_coding::power_of_two))
      detail::fail(where, "malformed buffer: level coding ", coding_code, " is not 0 (linear) or 1 (power of two)");
    const auto new_coding = static_cast<level_coding>(coding_code);
    const T new_scale = r.get<T>("scale");
    const std::size_t total_bits = detail::checked_mul(h.dim, bits, where, "level bits");
    const auto packed = r.take(detail::bytes_for_bits(total_bits), "levels");
    r.finish();
    if (!detail::padding_is_zero(packed, total_bits)) detail::fail(where, "malformed buffer: nonzero padding bits");
    if (new_coding == level_coding::power_of_two) {  // a check pass first, so *this stays as it was on error
      std::size_t bad = h.dim;
      detail::unpack_bits(packed, bits, h.dim, [&](std::size_t i, std::uint32_t v) {
        if (bad == h.dim && !detail::level_of_code(v, new_coding)) bad = i;
      });
      if (bad < h.dim)
        detail::fail(where, "malformed buffer: the power-of-two level code at index ", bad, " has an exponent above ",
                     detail::max_level_exponent);
    }
    levels.resize(h.dim);
    detail::unpack_bits(packed, bits, h.dim,
                        [&](std::size_t i, std::uint32_t v) { levels[i] = *detail::level_of_code(v, new_coding); });
    dim = h.dim;
    scale = new_scale;
    level_bits = bits;
    coding = new_coding;
  }

  friend bool operator==(const quantized_vector&, const quantized_vector&) = default;
};

}  // namespace gradcomp
