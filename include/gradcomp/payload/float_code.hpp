#pragma once
// float_code_vector: what the casts (float16_cast, bfloat16_cast) and natural compression
// send: every element as the bit pattern of a small floating-point format, and one
// power-of-two pre-scale.
//
// Element i decodes to T(ldexp(value(codes[i]), -scale_exponent)) (detail::decode_code), where
// value() is the code's exact value in its format.
//
// Wire layout (kind 6, version 1; after the 16-byte header with index bytes 0):
//   offset 16  format          u8: 1 float16, 2 bfloat16, 3 power_of_two
//          17  code bits       u8: 16 for float16 and bfloat16; for power_of_two 9 (float) or
//                              12 (double): the sign bit above T's exponent field
//          18  reserved        u16, zero
//          20  scale_exponent  i32
//          24  codes           code bits each, packed LSB first, ceil(dim * bits / 8) bytes;
//                              padding bits zero
// so 24 + ceil(dim * bits / 8) bytes in all.
//
// decode rejects, besides what every payload rejects: an unknown format, a code width that
// does not match the format and T, a nonzero reserved field or padding bit, a scale exponent
// outside the range the compressors produce (detail::scale_exponent_range: 0 for
// power_of_two), and any code that does not decode to a finite T (Inf and NaN codes, and codes
// whose scaled value overflows T). So every payload a decoder accepts decodes to finite values,
// as every payload a compressor produces does.
#include <concepts>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../detail/bitpack.hpp"
#include "../detail/bits.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/float_codes.hpp"
#include "../detail/strict_fp.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"

namespace gradcomp {

namespace detail {

inline const char* format_name(code_format f) {
  switch (f) {
    case code_format::float16: return "float16";
    case code_format::bfloat16: return "bfloat16";
    case code_format::power_of_two: return "power_of_two";
  }
  return "unknown";
}

inline bool is_known_format(std::uint8_t f) {
  return f == static_cast<std::uint8_t>(code_format::float16) || f == static_cast<std::uint8_t>(code_format::bfloat16) ||
         f == static_cast<std::uint8_t>(code_format::power_of_two);
}

}  // namespace detail

/// Element i decodes to T(ldexp(value(codes[i]), -scale_exponent)); see the header comment
/// for the wire layout and what decoding rejects.
template <std::floating_point T>
struct float_code_vector {
  using value_type = T;

  std::size_t dim = 0;
  code_format format = code_format::float16;
  std::int32_t scale_exponent = 0;
  std::vector<std::uint16_t> codes;

  /// Bits of one code on the wire.
  unsigned code_bits() const noexcept { return detail::code_bits<T>(format); }

  /// What element i decodes to.
  T value(std::size_t i) const noexcept { return detail::decode_code<T>(format, scale_exponent, codes[i]); }

  /// The checks that cost O(1): a known format, one code per element, a scale exponent the
  /// compressors can produce (so -scale_exponent cannot overflow).
  void validate_shape(const char* where) const {
    if (!detail::is_known_format(static_cast<std::uint8_t>(format)))
      detail::fail(where, "float_code_vector format ", static_cast<unsigned>(format), " is not a known format");
    if (codes.size() != dim) detail::fail(where, "float_code_vector has ", codes.size(), " codes for dim ", dim);
    const auto range = detail::scale_exponent_range<T>(format);
    if (scale_exponent < range.lo || scale_exponent > range.hi)
      detail::fail(where, "float_code_vector scale_exponent ", scale_exponent, " is outside [", range.lo, ", ",
                   range.hi, "] for format ", detail::format_name(format));
  }

  /// Everything decode checks: the shape, and every code fits its width and decodes to a
  /// finite value.
  void validate(const char* where) const {
    validate_shape(where);
    const std::uint32_t limit = std::uint32_t{1} << code_bits();
    for (std::size_t i = 0; i < dim; ++i) {
      if (codes[i] >= limit) detail::fail(where, "code ", codes[i], " at index ", i, " does not fit ", code_bits(), " bits");
      if (!std::isfinite(value(i)))
        detail::fail(where, "code ", codes[i], " at index ", i, " decodes to ", value(i), ", not a finite value");
    }
  }

  GRADCOMP_NO_FP_CONTRACT void decompress_add(std::span<T> dense, T alpha = T(1)) const {
    GRADCOMP_NO_FP_CONTRACT_BODY
    validate_shape("decompress_add");
    if (dense.size() != dim)
      detail::fail("decompress_add", "dense size ", dense.size(), " does not match payload dim ", dim);
    for (std::size_t i = 0; i < dim; ++i) dense[i] = detail::add_scaled(dense[i], alpha, value(i));
  }

  std::size_t sent_elements() const noexcept { return dim; }

  std::size_t wire_bytes() const {
    const char* where = "wire_bytes";
    const std::size_t bits = detail::checked_mul(dim, code_bits(), where, "code bits");
    return detail::checked_add(detail::header_bytes + 8, detail::bytes_for_bits(bits), where, "payload");
  }

  std::size_t encode_to(std::span<std::byte> dst) const {
    validate("encode");
    const unsigned bits = code_bits();
    const std::size_t nbytes = detail::bytes_for_bits(detail::checked_mul(dim, bits, "encode", "code bits"));
    detail::byte_writer w(dst, "encode");
    detail::put_header<T>(w, detail::wire_kind::float_code, 0, dim);
    w.put(static_cast<std::uint8_t>(format));
    w.put(static_cast<std::uint8_t>(bits));
    w.put(std::uint16_t{0});
    w.put(scale_exponent);
    detail::pack_bits(dim, bits, [&](std::size_t i) { return static_cast<std::uint32_t>(codes[i]); }, w.claim(nbytes));
    return w.written();
  }

  /// Replaces *this by the payload in src, or throws gc::error and leaves *this unchanged.
  void decode_from(std::span<const std::byte> src) {
    const char* where = "decode<float_code_vector>";
    detail::byte_reader r(src, where);
    const auto h = detail::get_header<T>(r, detail::wire_kind::float_code);
    if (h.index_bytes != 0) detail::fail(where, "malformed buffer: index width ", h.index_bytes, " (must be 0)");
    const auto format_byte = r.get<std::uint8_t>("format");
    if (!detail::is_known_format(format_byte))
      detail::fail(where, "malformed buffer: format ", static_cast<unsigned>(format_byte),
                   " is not 1 (float16), 2 (bfloat16) or 3 (power_of_two)");
    const auto new_format = static_cast<code_format>(format_byte);
    const unsigned bits = detail::code_bits<T>(new_format);
    const auto bits_byte = r.get<std::uint8_t>("code bits");
    if (bits_byte != bits)
      detail::fail(where, "malformed buffer: code bits ", static_cast<unsigned>(bits_byte), " (format ",
                   detail::format_name(new_format), " of ", sizeof(T) * 8, "-bit floats has ", bits, ")");
    if (r.get<std::uint16_t>("reserved") != 0) detail::fail(where, "malformed buffer: reserved field is not zero");
    const auto new_exponent = r.get<std::int32_t>("scale exponent");
    const auto range = detail::scale_exponent_range<T>(new_format);
    if (new_exponent < range.lo || new_exponent > range.hi)
      detail::fail(where, "malformed buffer: scale_exponent ", new_exponent, " is outside [", range.lo, ", ", range.hi,
                   "], the exponents the compressors produce for format ", detail::format_name(new_format));
    // At least 9 bits per element, so dim is bounded by the buffer's size.
    const std::size_t total_bits = detail::checked_mul(h.dim, bits, where, "code bits");
    const auto packed = r.take(detail::bytes_for_bits(total_bits), "codes");
    r.finish();
    if (!detail::padding_is_zero(packed, total_bits)) detail::fail(where, "malformed buffer: nonzero padding bits");
    // Every code must decode to a finite value; checked before anything is written.
    detail::unpack_bits(packed, bits, h.dim, [&](std::size_t i, std::uint32_t v) {
      const T decoded = detail::decode_code<T>(new_format, new_exponent, static_cast<std::uint16_t>(v));
      if (!std::isfinite(decoded))
        detail::fail(where, "malformed buffer: code ", v, " at index ", i, " decodes to ", decoded,
                     ", not a finite value");
    });
    codes.resize(h.dim);
    detail::unpack_bits(packed, bits, h.dim, [&](std::size_t i, std::uint32_t v) { codes[i] = static_cast<std::uint16_t>(v); });
    dim = h.dim;
    format = new_format;
    scale_exponent = new_exponent;
  }

  friend bool operator==(const float_code_vector&, const float_code_vector&) = default;
};

}  // namespace gradcomp
