#pragma once
// Little-endian byte writing and bounds-checked reading, and the 16-byte header that opens
// every encoded payload:
//
//   offset 0  'G' 'C'          magic
//          2  kind             which payload (wire_kind)
//          3  version          format version of that payload (wire_version_of: 2 for the
//                              seeded sparse payload, whose index set changed, 1 for the others)
//          4  value bytes      4 = float32, 8 = float64
//          5  index bytes      4 or 8 for sparse payloads, 0 where there are no indices
//          6  0 0              reserved, must be zero
//          8  dim              u64, the dimension of the dense vector
//
// Readers never trust a length: every size is checked against the bytes that are there,
// and arithmetic on sizes is checked for overflow, so a hostile buffer gives gc::error.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "../error.hpp"
#include "bits.hpp"

namespace gradcomp::detail {

enum class wire_kind : std::uint8_t {
  sparse = 1,         // sparse_vector: indices + values
  seeded_sparse = 2,  // seeded_sparse_vector: values only, indices regenerated from the seed
  sign = 3,           // sign_vector: one scale per block + 1 bit per element
  quantized = 4,      // quantized_vector: scale + packed integer levels
  dense = 5,          // dense_vector: every value
  float_code = 6,     // float_code_vector: power-of-two pre-scale + a 16-, 12- or 9-bit float code per element
  bucket_quantized = 7,  // bucket_quantized_vector: (min, unit) per bucket + packed levels
  two_level = 8,         // two_level_vector: (low, high) per block + 1 bit per element
};

/// The format version of each payload kind. Version 2 of the seeded sparse payload means
/// the same bytes as version 1 but another index set for (dim, k, seed, step): the k indices
/// with the smallest hashes (detail/random.hpp) instead of Floyd's draws, so that every back
/// end can compute it in parallel. A version 1 message cannot be decoded: its indices are not
/// known any more.
constexpr std::uint8_t wire_version_of(wire_kind kind) noexcept { return kind == wire_kind::seeded_sparse ? 2 : 1; }
inline constexpr std::size_t header_bytes = 16;

template <class U>
void store_le(std::byte* dst, U v) noexcept {
  static_assert(std::is_unsigned_v<U>);
  for (std::size_t b = 0; b < sizeof(U); ++b) dst[b] = static_cast<std::byte>((v >> (8 * b)) & 0xff);
}

template <class U>
U load_le(const std::byte* src) noexcept {
  static_assert(std::is_unsigned_v<U>);
  U v = 0;
  for (std::size_t b = 0; b < sizeof(U); ++b) v |= static_cast<U>(std::to_integer<U>(src[b])) << (8 * b);
  return v;
}

/// Writes into a buffer whose size was computed beforehand by wire_bytes().
class byte_writer {
 public:
  byte_writer(std::span<std::byte> dst, const char* where) : dst_(dst), where_(where) {}

  template <class V>
  void put(V v) {
    room(sizeof(V));
    if constexpr (std::is_floating_point_v<V>)
      store_le(dst_.data() + pos_, std::bit_cast<uint_of<V>>(v));
    else
      store_le(dst_.data() + pos_, static_cast<std::make_unsigned_t<V>>(v));
    pos_ += sizeof(V);
  }

  /// Writes n values of an arithmetic type as little-endian.
  template <class V>
  void put_array(const V* src, std::size_t n) {
    room(checked_mul(n, sizeof(V), where_, "array size"));
    if constexpr (std::endian::native == std::endian::little) {
      if (n) std::memcpy(dst_.data() + pos_, src, n * sizeof(V));
      pos_ += n * sizeof(V);
    } else {
      for (std::size_t i = 0; i < n; ++i) put(src[i]);
    }
  }

  void put_bytes(const std::byte* src, std::size_t n) {
    room(n);
    if (n) std::memcpy(dst_.data() + pos_, src, n);
    pos_ += n;
  }

  /// The next n bytes of the destination, for the caller to fill.
  std::span<std::byte> claim(std::size_t n) {
    room(n);
    auto s = dst_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

  std::size_t written() const noexcept { return pos_; }

 private:
  void room(std::size_t n) const {
    if (n > dst_.size() - pos_)
      fail(where_, "destination buffer too small (", dst_.size(), " bytes, need more than ", pos_ + n - 1, ")");
  }
  std::span<std::byte> dst_;
  std::size_t pos_ = 0;
  const char* where_;
};

/// Reads a buffer that may be truncated, corrupted or hostile.
class byte_reader {
 public:
  byte_reader(std::span<const std::byte> src, const char* where) : src_(src), where_(where) {}

  template <class V>
  V get(const char* what) {
    need(sizeof(V), what);
    V v;
    if constexpr (std::is_floating_point_v<V>)
      v = std::bit_cast<V>(load_le<uint_of<V>>(src_.data() + pos_));
    else
      v = static_cast<V>(load_le<std::make_unsigned_t<V>>(src_.data() + pos_));
    pos_ += sizeof(V);
    return v;
  }

  /// The next n bytes, checked to be there.
  std::span<const std::byte> take(std::size_t n, const char* what) {
    need(n, what);
    auto s = src_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

  /// Fails unless every byte was consumed (trailing garbage is an error).
  void finish() const {
    if (pos_ != src_.size())
      fail(where_, "malformed buffer: ", src_.size() - pos_, " unexpected trailing bytes after ", pos_);
  }

  const char* where() const noexcept { return where_; }

 private:
  void need(std::size_t n, const char* what) const {
    if (n > src_.size() - pos_)
      fail(where_, "truncated buffer: ", what, " needs ", n, " bytes at offset ", pos_, ", only ",
           src_.size() - pos_, " left");
  }
  std::span<const std::byte> src_;
  std::size_t pos_ = 0;
  const char* where_;
};

/// Copies n little-endian values of type V from bytes (whose size is n * sizeof(V)).
template <class V>
void copy_le_array(std::span<const std::byte> bytes, V* dst, std::size_t n) {
  if constexpr (std::endian::native == std::endian::little) {
    if (n) std::memcpy(dst, bytes.data(), n * sizeof(V));
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      const auto u = load_le<uint_of<V>>(bytes.data() + i * sizeof(V));
      dst[i] = std::bit_cast<V>(u);
    }
  }
}

template <class T>
void put_header(byte_writer& w, wire_kind kind, std::size_t index_bytes, std::size_t dim) {
  w.put(std::uint8_t{'G'});
  w.put(std::uint8_t{'C'});
  w.put(static_cast<std::uint8_t>(kind));
  w.put(wire_version_of(kind));
  w.put(static_cast<std::uint8_t>(sizeof(T)));
  w.put(static_cast<std::uint8_t>(index_bytes));
  w.put(std::uint16_t{0});
  w.put(static_cast<std::uint64_t>(dim));
}

inline const char* kind_name(std::uint8_t kind) {
  switch (kind) {
    case 1: return "sparse";
    case 2: return "seeded sparse";
    case 3: return "sign";
    case 4: return "quantized";
    case 5: return "dense";
    case 6: return "float code";
    case 7: return "bucket quantized";
    case 8: return "two level";
    default: return "unknown";
  }
}

struct header {
  std::uint8_t index_bytes;
  std::size_t dim;
};

/// Reads and validates the header of a payload of the given kind and value type T.
template <class T>
header get_header(byte_reader& r, wire_kind expected) {
  const char* where = r.where();
  const auto g = r.get<std::uint8_t>("magic");
  const auto c = r.get<std::uint8_t>("magic");
  if (g != 'G' || c != 'C') fail(where, "malformed buffer: bad magic (not a gradcomp payload)");
  const auto kind = r.get<std::uint8_t>("kind");
  if (kind != static_cast<std::uint8_t>(expected))
    fail(where, "malformed buffer: payload kind is ", kind_name(kind), " (", kind, "), expected ",
         kind_name(static_cast<std::uint8_t>(expected)));
  const auto version = r.get<std::uint8_t>("version");
  if (version != wire_version_of(expected)) {
    if (expected == wire_kind::seeded_sparse && version == 1)
      fail(where, "unsupported wire format version 1 of the seeded sparse payload: its indices came from "
                  "Floyd's algorithm, which this build no longer computes (it reads version 2)");
    fail(where, "unsupported wire format version ", version, " (this build reads ", wire_version_of(expected), ")");
  }
  const auto value_bytes = r.get<std::uint8_t>("value type");
  if (value_bytes != sizeof(T))
    fail(where, "value type mismatch: buffer holds ", value_bytes * 8, "-bit floats, payload expects ",
         sizeof(T) * 8, "-bit");
  const auto index_bytes = r.get<std::uint8_t>("index width");
  if (r.get<std::uint16_t>("reserved") != 0) fail(where, "malformed buffer: reserved header bytes are not zero");
  const auto dim = r.get<std::uint64_t>("dimension");
  if constexpr (sizeof(std::size_t) < sizeof(std::uint64_t)) {
    if (dim > std::numeric_limits<std::size_t>::max())
      fail(where, "dimension ", dim, " does not fit size_t on this machine");
  }
  return {index_bytes, static_cast<std::size_t>(dim)};
}

/// Writes one bit per element from 64-bit words (bit i of word i / 64) as ceil(bits / 8)
/// bytes, element i at bit i % 8 of byte i / 8, the padding bits of the last byte zero: the
/// bit field of the sign and two-level payloads.
inline void put_bit_field(byte_writer& w, const std::uint64_t* words, std::size_t bits) {
  const std::size_t nbytes = bytes_for_bits(bits);
  for (std::size_t b = 0; b < nbytes; ++b) {
    auto byte = static_cast<std::uint8_t>(words[b / 8] >> (8 * (b % 8)));
    if (b == nbytes - 1 && bits % 8 != 0) byte &= static_cast<std::uint8_t>((1u << (bits % 8)) - 1);  // zero padding
    w.put(byte);
  }
}

/// The inverse of put_bit_field: words = the bytes' bits (bytes as put_bit_field wrote them;
/// the caller checks the padding with padding_is_zero).
inline void get_bit_field(std::span<const std::byte> bytes, std::size_t bits, std::vector<std::uint64_t>& words) {
  words.assign(words_for_bits(bits), 0);
  for (std::size_t i = 0; i < bytes.size(); ++i)
    words[i / 8] |= static_cast<std::uint64_t>(std::to_integer<std::uint8_t>(bytes[i])) << (8 * (i % 8));
}

}  // namespace gradcomp::detail
