#pragma once
// bucket_quantized_vector: what maxmin_quantizer sends: per bucket of bucket_size consecutive
// elements its minimum and its grid unit, and one unsigned level of `bits` bits per element.
//
// Element i of bucket b = i / bucket_size decodes to maxmin_value(mins[b], units[b], levels[i])
// = min + unit * T(level), two roundings in T (no FMA).
//
// Wire format (kind 7, version 1), all little-endian:
//
//   offset 0   16-byte header (detail/wire.hpp): kind 7, value bytes 4 or 8, index bytes 0, dim
//          16  bucket_size  u64, >= 1
//          24  bits         u32, 1..8
//          28  reserved     u32, 0
//          32  ceil(dim / bucket_size) pairs (min, unit), each a T, bucket 0 first
//              then ceil(dim * bits / 8) bytes: level i at bit offset i * bits, LSB first
//              (detail/bitpack.hpp); padding bits zero
//
//   total bytes = 32 + 2 * ceil(dim / bucket_size) * sizeof(T) + ceil(dim * bits / 8)
//
// What a valid payload is (encode checks it, decode rejects everything else): bits in 1..8,
// bucket_size >= 1, one (min, unit) per bucket and one level per element, every level below
// 2^bits, every min and unit finite, no unit with its sign bit set, and every bucket's top
// level min + unit * (2^bits - 1) finite in T. Decoding is monotone in the level, so every
// level of a valid payload decodes to a finite value; maxmin_quantizer only sends such payloads.
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "../detail/bitpack.hpp"
#include "../detail/bits.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/host_device.hpp"
#include "../detail/strict_fp.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"

namespace gradcomp {

namespace detail {

/// What a level of a bucket-quantized payload decodes to: min + unit * T(level), rounded
/// twice in T (the product, then the sum), never fused. Nondecreasing in the level.
template <std::floating_point T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD inline T maxmin_value(T min, T unit, std::uint32_t level) noexcept {
  GRADCOMP_NO_FP_CONTRACT_BODY
  return min + unit * static_cast<T>(level);
}

/// The largest level of `bits` bits: L = 2^bits - 1.
GRADCOMP_HD constexpr std::uint32_t top_level(unsigned bits) noexcept { return (std::uint32_t{1} << bits) - 1; }

/// Number of buckets of bucket_size (>= 1) elements that cover dim elements.
constexpr std::size_t bucket_count(std::size_t dim, std::size_t bucket_size) noexcept {
  return dim == 0 ? 0 : (dim - 1) / bucket_size + 1;
}

/// Fails unless bucket b's (min, unit) is valid (see the header comment): both finite, the
/// unit's sign bit clear, and the top level min + unit * L finite.
template <std::floating_point T>
void check_bucket_parameters(const char* where, std::size_t b, T min, T unit, unsigned bits) {
  if (!std::isfinite(min)) fail(where, "bucket ", b, " has a non-finite min ", min);
  if (!std::isfinite(unit) || std::signbit(unit))
    fail(where, "bucket ", b, " has unit ", unit, " (must be finite and +0 or positive)");
  if (!std::isfinite(maxmin_value(min, unit, top_level(bits))))
    fail(where, "bucket ", b, " (min ", min, ", unit ", unit, ") decodes its top level ", top_level(bits),
         " to a non-finite value");
}

}  // namespace detail

/// Per bucket b of bucket_size consecutive elements (the last may be shorter): mins[b] and
/// units[b]; element i decodes to mins[i / bucket_size] + units[i / bucket_size] * levels[i].
template <std::floating_point T>
struct bucket_quantized_vector {
  using value_type = T;

  std::size_t dim = 0;
  std::size_t bucket_size = 1;
  unsigned bits = 8;                  // level width, 1..8
  std::vector<T> mins;                // one per bucket
  std::vector<T> units;               // one per bucket
  std::vector<std::uint8_t> levels;   // one per element, each < 2^bits

  std::size_t buckets() const noexcept { return detail::bucket_count(dim, bucket_size); }

  /// The sizes agree (cheap): what decompress_add needs to stay in bounds.
  void check_sizes(const char* where) const {
    if (bucket_size == 0) detail::fail(where, "bucket_quantized_vector bucket_size must be >= 1 (got 0)");
    if (levels.size() != dim)
      detail::fail(where, "bucket_quantized_vector has ", levels.size(), " levels for dim ", dim);
    if (mins.size() != buckets() || units.size() != buckets())
      detail::fail(where, "bucket_quantized_vector has ", mins.size(), " mins and ", units.size(), " units, expected ",
                   buckets(), " for dim ", dim, " and bucket_size ", bucket_size);
  }

  /// Everything a valid payload satisfies (the header comment's list).
  void validate(const char* where) const {
    if (bits < 1 || bits > 8) detail::fail(where, "bucket_quantized_vector bits ", bits, " is outside [1, 8]");
    check_sizes(where);
    for (std::size_t b = 0; b < buckets(); ++b) detail::check_bucket_parameters(where, b, mins[b], units[b], bits);
    for (std::size_t i = 0; i < dim; ++i)
      if (levels[i] > detail::top_level(bits))
        detail::fail(where, "level ", static_cast<unsigned>(levels[i]), " at index ", i, " does not fit ", bits,
                     " bits");
  }

  GRADCOMP_NO_FP_CONTRACT void decompress_add(std::span<T> dense, T alpha = T(1)) const {
    GRADCOMP_NO_FP_CONTRACT_BODY
    check_sizes("decompress_add");
    if (dense.size() != dim)
      detail::fail("decompress_add", "dense size ", dense.size(), " does not match payload dim ", dim);
    for (std::size_t i = 0; i < dim; ++i) {
      const std::size_t b = i / bucket_size;
      dense[i] = detail::add_scaled(dense[i], alpha, detail::maxmin_value(mins[b], units[b], levels[i]));
    }
  }

  std::size_t sent_elements() const noexcept { return dim; }

  std::size_t wire_bytes() const {
    const char* where = "wire_bytes";
    if (bucket_size == 0) detail::fail(where, "bucket_quantized_vector bucket_size must be >= 1 (got 0)");
    const std::size_t meta = detail::checked_mul(buckets(), 2 * sizeof(T), where, "bucket parameters");
    const std::size_t level_bytes = detail::bytes_for_bits(detail::checked_mul(dim, bits, where, "level bits"));
    return detail::checked_add(detail::checked_add(detail::header_bytes + 16, meta, where, "payload"), level_bytes,
                               where, "payload");
  }

  std::size_t encode_to(std::span<std::byte> dst) const {
    validate("encode");
    const std::size_t nbytes = detail::bytes_for_bits(detail::checked_mul(dim, bits, "encode", "level bits"));
    detail::byte_writer w(dst, "encode");
    detail::put_header<T>(w, detail::wire_kind::bucket_quantized, 0, dim);
    w.put(static_cast<std::uint64_t>(bucket_size));
    w.put(static_cast<std::uint32_t>(bits));
    w.put(std::uint32_t{0});
    for (std::size_t b = 0; b < buckets(); ++b) {
      w.put(mins[b]);
      w.put(units[b]);
    }
    detail::pack_bits(dim, bits, [&](std::size_t i) { return static_cast<std::uint32_t>(levels[i]); }, w.claim(nbytes));
    return w.written();
  }

  /// Replaces *this by the payload in src, or throws gc::error and leaves *this unchanged.
  /// Every size is checked against the bytes that are there before anything is allocated, so
  /// a hostile dim or bucket_size fails at once; what it allocates is at most 9 times the
  /// buffer's size (a level takes a byte in memory and at least a bit on the wire).
  void decode_from(std::span<const std::byte> src) {
    const char* where = "decode<bucket_quantized_vector>";
    detail::byte_reader r(src, where);
    const auto h = detail::get_header<T>(r, detail::wire_kind::bucket_quantized);
    if (h.index_bytes != 0) detail::fail(where, "malformed buffer: index width ", h.index_bytes, " (must be 0)");
    const auto b64 = r.get<std::uint64_t>("bucket size");
    if (b64 == 0) detail::fail(where, "malformed buffer: bucket_size is 0");
    if constexpr (sizeof(std::size_t) < sizeof(std::uint64_t)) {
      if (b64 > std::numeric_limits<std::size_t>::max())
        detail::fail(where, "bucket size ", b64, " does not fit size_t on this machine");
    }
    const auto new_bits = r.get<std::uint32_t>("bits");
    if (new_bits < 1 || new_bits > 8) detail::fail(where, "malformed buffer: bits ", new_bits, " is outside [1, 8]");
    if (r.get<std::uint32_t>("reserved") != 0) detail::fail(where, "malformed buffer: reserved field is not zero");
    const auto b = static_cast<std::size_t>(b64);
    const std::size_t nbuckets = detail::bucket_count(h.dim, b);
    const auto meta = r.take(detail::checked_mul(nbuckets, 2 * sizeof(T), where, "bucket parameters"), "bucket parameters");
    const std::size_t total_bits = detail::checked_mul(h.dim, new_bits, where, "level bits");
    const auto packed = r.take(detail::bytes_for_bits(total_bits), "levels");
    r.finish();
    if (!detail::padding_is_zero(packed, total_bits)) detail::fail(where, "malformed buffer: nonzero padding bits");
    // The bucket parameters are checked from the buffer before *this changes.
    const auto param = [&](std::size_t k) {
      return std::bit_cast<T>(detail::load_le<detail::uint_of<T>>(meta.data() + k * sizeof(T)));
    };
    for (std::size_t k = 0; k < nbuckets; ++k)
      detail::check_bucket_parameters(where, k, param(2 * k), param(2 * k + 1), new_bits);
    mins.resize(nbuckets);
    units.resize(nbuckets);
    for (std::size_t k = 0; k < nbuckets; ++k) {
      mins[k] = param(2 * k);
      units[k] = param(2 * k + 1);
    }
    levels.resize(h.dim);
    detail::unpack_bits(packed, new_bits, h.dim,
                        [&](std::size_t i, std::uint32_t v) { levels[i] = static_cast<std::uint8_t>(v); });
    dim = h.dim;
    bucket_size = b;
    bits = new_bits;
  }

  friend bool operator==(const bucket_quantized_vector&, const bucket_quantized_vector&) = default;
};

}  // namespace gradcomp
