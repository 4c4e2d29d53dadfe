#pragma once
// two_level_vector: what onebit sends: per block of block_size elements two values, the mean
// of its negative elements (low) and the mean of the others (high), and one bit per element
// saying which of the two it decodes to.
//
// Element i of block b = i / block_size decodes to negative(i) ? lows[b] : highs[b]
// (detail::two_level_value).
//
// Wire format (kind 8, version 1), all little-endian:
//
//   offset 0   16-byte header (detail/wire.hpp): kind 8, value bytes 4 or 8, index bytes 0, dim
//          16  block_size  u64, >= 1
//          24  ceil(dim / block_size) lows, each a T, block 0 first
//              then as many highs
//              then ceil(dim / 8) bytes of bits, element i at bit i % 8 of byte i / 8; padding
//              bits zero
//
//   total bytes = 24 + 2 * ceil(dim / block_size) * sizeof(T) + ceil(dim / 8)
//
// As for sign_vector, the decoder checks the structure (sizes, block_size, padding), not the
// values: any low and high decodes to itself. onebit sends low <= 0 (or -inf) and high >= 0
// (or +inf, NaN), each block's two means.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "../detail/bitpack.hpp"
#include "../detail/bits.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/strict_fp.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"

namespace gradcomp {

template <std::floating_point T>
struct two_level_vector {
  using value_type = T;

  std::size_t dim = 0;
  std::size_t block_size = 1;           // elements per (low, high) pair; the last block may be shorter
  std::vector<T> lows;                  // ceil(dim / block_size): what a set bit decodes to
  std::vector<T> highs;                 // as many: what a clear bit decodes to
  std::vector<std::uint64_t> negative;  // bit i of word i / 64 set: element i decodes to its block's low

  static constexpr std::size_t block_count(std::size_t dim, std::size_t block_size) noexcept {
    return dim == 0 ? 0 : (dim - 1) / block_size + 1;
  }
  std::size_t blocks() const noexcept { return block_count(dim, block_size); }

  bool is_negative(std::size_t i) const noexcept { return (negative[i / 64] >> (i % 64)) & 1u; }

  /// Resizes for a vector of dimension d with blocks of b: every low and high 0, no bit set.
  void reset(std::size_t d, std::size_t b) {
    if (b == 0) detail::fail("two_level_vector", "block_size must be >= 1 (got 0)");
    dim = d;
    block_size = b;
    lows.assign(block_count(d, b), T(0));
    highs.assign(block_count(d, b), T(0));
    negative.assign(detail::words_for_bits(d), 0);
  }

  void validate(const char* where) const {
    if (block_size == 0) detail::fail(where, "two_level_vector block_size must be >= 1 (got 0)");
    if (lows.size() != blocks() || highs.size() != blocks())
      detail::fail(where, "two_level_vector has ", lows.size(), " lows and ", highs.size(), " highs, expected ",
                   blocks(), " of each for dim ", dim, " and block_size ", block_size);
    if (negative.size() != detail::words_for_bits(dim))
      detail::fail(where, "two_level_vector has ", negative.size(), " bit words, expected ",
                   detail::words_for_bits(dim));
  }

  GRADCOMP_NO_FP_CONTRACT void decompress_add(std::span<T> dense, T alpha = T(1)) const {
    GRADCOMP_NO_FP_CONTRACT_BODY
    validate("decompress_add");
    if (dense.size() != dim)
      detail::fail("decompress_add", "dense size ", dense.size(), " does not match payload dim ", dim);
    for (std::size_t i = 0; i < dim; ++i) {
      const std::size_t b = i / block_size;
      dense[i] = detail::add_scaled(dense[i], alpha, detail::two_level_value(lows[b], highs[b], is_negative(i)));
    }
  }

  std::size_t sent_elements() const noexcept { return dim; }

  std::size_t wire_bytes() const {
    const char* where = "wire_bytes";
    if (block_size == 0) detail::fail(where, "two_level_vector block_size must be >= 1 (got 0)");
    const std::size_t values = detail::checked_mul(blocks(), 2 * sizeof(T), where, "lows and highs");
    const std::size_t n = detail::checked_add(detail::header_bytes + 8, values, where, "payload");
    return detail::checked_add(n, detail::bytes_for_bits(dim), where, "payload");
  }

  std::size_t encode_to(std::span<std::byte> dst) const {
    validate("encode");
    detail::byte_writer w(dst, "encode");
    detail::put_header<T>(w, detail::wire_kind::two_level, 0, dim);
    w.put(static_cast<std::uint64_t>(block_size));
    w.put_array(lows.data(), lows.size());
    w.put_array(highs.data(), highs.size());
    detail::put_bit_field(w, negative.data(), dim);
    return w.written();
  }

  /// Replaces *this by the payload in src, or throws gc::error and leaves *this unchanged.
  void decode_from(std::span<const std::byte> src) {
    const char* where = "decode<two_level_vector>";
    detail::byte_reader r(src, where);
    const auto h = detail::get_header<T>(r, detail::wire_kind::two_level);
    if (h.index_bytes != 0) detail::fail(where, "malformed buffer: index width ", h.index_bytes, " (must be 0)");
    const auto b64 = r.get<std::uint64_t>("block size");
    if (b64 == 0) detail::fail(where, "malformed buffer: block_size is 0");
    if constexpr (sizeof(std::size_t) < sizeof(std::uint64_t)) {
      if (b64 > std::numeric_limits<std::size_t>::max())
        detail::fail(where, "block size ", b64, " does not fit size_t on this machine");
    }
    const auto b = static_cast<std::size_t>(b64);
    const std::size_t nblocks = block_count(h.dim, b);
    const std::size_t value_bytes = detail::checked_mul(nblocks, sizeof(T), where, "lows");
    const auto low_bytes = r.take(value_bytes, "lows");
    const auto high_bytes = r.take(value_bytes, "highs");
    const auto bit_bytes = r.take(detail::bytes_for_bits(h.dim), "bits");
    r.finish();
    if (!detail::padding_is_zero(bit_bytes, h.dim)) detail::fail(where, "malformed buffer: nonzero padding bits");
    lows.resize(nblocks);
    highs.resize(nblocks);
    detail::copy_le_array(low_bytes, lows.data(), nblocks);
    detail::copy_le_array(high_bytes, highs.data(), nblocks);
    detail::get_bit_field(bit_bytes, h.dim, negative);
    dim = h.dim;
    block_size = b;
  }

  friend bool operator==(const two_level_vector&, const two_level_vector&) = default;
};

}  // namespace gradcomp
