#pragma once
// Packing of small unsigned integers into a little-endian bit stream (LSB first), used by
// the quantized payload (w bits per element, 1 <= w <= 32).
#include <cstddef>
#include <cstdint>
#include <span>

#include "host_device.hpp"

namespace gradcomp::detail {

/// Writes value_at(i) (each < 2^width) at bit offset i * width of out, which holds
/// exactly bytes_for_bits(count * width) bytes; padding bits are zero.
template <class ValueAt>
void pack_bits(std::size_t count, unsigned width, ValueAt value_at, std::span<std::byte> out) {
  std::uint64_t acc = 0;  // bits not yet written; fewer than 8 + 32
  unsigned filled = 0;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < count; ++i) {
    acc |= static_cast<std::uint64_t>(value_at(i)) << filled;
    filled += width;
    while (filled >= 8) {
      out[pos++] = static_cast<std::byte>(acc & 0xff);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) out[pos] = static_cast<std::byte>(acc & 0xff);
}

/// Reads count values of width bits from a stream written by pack_bits; store(i, v).
template <class Store>
void unpack_bits(std::span<const std::byte> in, unsigned width, std::size_t count, Store store) {
  const std::uint64_t mask = (std::uint64_t{1} << width) - 1;
  std::uint64_t acc = 0;
  unsigned avail = 0;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < count; ++i) {
    while (avail < width) {
      acc |= static_cast<std::uint64_t>(std::to_integer<std::uint8_t>(in[pos++])) << avail;
      avail += 8;
    }
    store(i, static_cast<std::uint32_t>(acc & mask));
    acc >>= width;
    avail -= width;
  }
}

/// True when every bit at or after bit_count in bytes is zero (canonical padding).
inline bool padding_is_zero(std::span<const std::byte> bytes, std::uint64_t bit_count) {
  const unsigned used_in_last = static_cast<unsigned>(bit_count % 8);
  if (bytes.empty() || used_in_last == 0) return true;
  return (std::to_integer<unsigned>(bytes.back()) >> used_in_last) == 0;
}

/// Zigzag maps signed to unsigned so small magnitudes need few bits: 0,-1,1,-2 -> 0,1,2,3.
GRADCOMP_HD constexpr std::uint32_t zigzag(std::int32_t v) noexcept {
  return (static_cast<std::uint32_t>(v) << 1) ^ static_cast<std::uint32_t>(v >> 31);
}
constexpr std::int32_t unzigzag(std::uint32_t u) noexcept {
  return static_cast<std::int32_t>(u >> 1) ^ -static_cast<std::int32_t>(u & 1);
}

/// Bits needed to hold v, at least 1.
GRADCOMP_HD constexpr unsigned bits_to_hold(std::uint32_t v) noexcept {
  unsigned w = 1;
  while (w < 32 && (v >> w) != 0) ++w;
  return w;
}

}  // namespace gradcomp::detail
