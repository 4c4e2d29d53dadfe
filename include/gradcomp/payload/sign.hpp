#pragma once
// sign_vector: what scaled_sign and blockwise_sign send: one scale per block of elements
// and one bit per element.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "../detail/element_rules.hpp"
#include "../detail/bitpack.hpp"
#include "../detail/bits.hpp"
#include "../detail/strict_fp.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"

namespace gradcomp {

/// Element i decodes to (negative(i) ? -1 : +1) * scales[i / block_size].
/// On the wire: header, block_size (u64), the block scales, then ceil(dim / 8) bytes of
/// sign bits, element i at bit i % 8 of byte i / 8; padding bits are zero.
template <std::floating_point T>
struct sign_vector {
  using value_type = T;

  std::size_t dim = 0;
  std::size_t block_size = 1;           // elements per scale; the last block may be shorter
  std::vector<T> scales;                // ceil(dim / block_size) scales
  std::vector<std::uint64_t> negative;  // bit i of word i / 64 set: element i is negative

  static constexpr std::size_t block_count(std::size_t dim, std::size_t block_size) noexcept {
    return dim == 0 ? 0 : (dim - 1) / block_size + 1;
  }
  std::size_t blocks() const noexcept { return block_count(dim, block_size); }

  bool is_negative(std::size_t i) const noexcept { return (negative[i / 64] >> (i % 64)) & 1u; }

  /// Resizes for a vector of dimension d with blocks of b, all signs positive.
  void reset(std::size_t d, std::size_t b) {
    if (b == 0) detail::fail("sign_vector", "block_size must be >= 1 (got 0)");
    dim = d;
    block_size = b;
    scales.assign(block_count(d, b), T(0));
    negative.assign(detail::words_for_bits(d), 0);
  }

  void validate(const char* where) const {
    if (block_size == 0) detail::fail(where, "sign_vector block_size must be >= 1 (got 0)");
    if (scales.size() != blocks())
      detail::fail(where, "sign_vector has ", scales.size(), " scales, expected ", blocks(), " for dim ", dim,
                   " and block_size ", block_size);
    if (negative.size() != detail::words_for_bits(dim))
      detail::fail(where, "sign_vector has ", negative.size(), " sign words, expected ", detail::words_for_bits(dim));
  }

  GRADCOMP_NO_FP_CONTRACT void decompress_add(std::span<T> dense, T alpha = T(1)) const {
    GRADCOMP_NO_FP_CONTRACT_BODY
    validate("decompress_add");
    if (dense.size() != dim)
      detail::fail("decompress_add", "dense size ", dense.size(), " does not match payload dim ", dim);
    for (std::size_t i = 0; i < dim; ++i) {
      const T s = scales[i / block_size];
      dense[i] = detail::add_scaled(dense[i], alpha, detail::signed_scale(s, is_negative(i)));
    }
  }

  std::size_t sent_elements() const noexcept { return dim; }

  std::size_t wire_bytes() const {
    const char* where = "wire_bytes";
    if (block_size == 0) detail::fail(where, "sign_vector block_size must be >= 1 (got 0)");
    std::size_t n = detail::header_bytes + 8;
    n = detail::checked_add(n, detail::checked_mul(blocks(), sizeof(T), where, "scales"), where, "payload");
    return detail::checked_add(n, detail::bytes_for_bits(dim), where, "payload");
  }

  std::size_t encode_to(std::span<std::byte> dst) const {
    validate("encode");
    detail::byte_writer w(dst, "encode");
    detail::put_header<T>(w, detail::wire_kind::sign, 0, dim);
    w.put(static_cast<std::uint64_t>(block_size));
    w.put_array(scales.data(), scales.size());
    detail::put_bit_field(w, negative.data(), dim);
    return w.written();
  }

  /// Replaces *this by the payload in src, or throws gc::error and leaves *this unchanged.
  void decode_from(std::span<const std::byte> src) {
    const char* where = "decode<sign_vector>";
    detail::byte_reader r(src, where);
    const auto h = detail::get_header<T>(r, detail::wire_kind::sign);
    if (h.index_bytes != 0) detail::fail(where, "malformed buffer: index width ", h.index_bytes, " (must be 0)");
    const auto b64 = r.get<std::uint64_t>("block size");
    if (b64 == 0) detail::fail(where, "malformed buffer: block_size is 0");
    if constexpr (sizeof(std::size_t) < sizeof(std::uint64_t)) {
      if (b64 > std::numeric_limits<std::size_t>::max()) detail::fail(where, "block size ", b64, " does not fit size_t on this machine");
    }
    const auto b = static_cast<std::size_t>(b64);
    const std::size_t nblocks = block_count(h.dim, b);
    const auto scale_bytes = r.take(detail::checked_mul(nblocks, sizeof(T), where, "scales"), "scales");
    const auto sign_bytes = r.take(detail::bytes_for_bits(h.dim), "sign bits");
    r.finish();
    if (!detail::padding_is_zero(sign_bytes, h.dim)) detail::fail(where, "malformed buffer: nonzero padding bits");
    scales.resize(nblocks);
    detail::copy_le_array(scale_bytes, scales.data(), nblocks);
    detail::get_bit_field(sign_bytes, h.dim, negative);
    dim = h.dim;
    block_size = b;
  }

  friend bool operator==(const sign_vector&, const sign_vector&) = default;
};

}  // namespace gradcomp
