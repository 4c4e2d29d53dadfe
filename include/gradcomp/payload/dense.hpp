#pragma once
// dense_vector: every value, uncompressed (what the identity compressor sends).
#include <concepts>
#include <cstddef>
#include <span>
#include <vector>

#include "../detail/element_rules.hpp"
#include "../detail/strict_fp.hpp"
#include "../detail/bits.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"

namespace gradcomp {

/// On the wire: header, then dim values.
template <std::floating_point T>
struct dense_vector {
  using value_type = T;

  std::vector<T> values;

  std::size_t dim() const noexcept { return values.size(); }

  GRADCOMP_NO_FP_CONTRACT void decompress_add(std::span<T> dense, T alpha = T(1)) const {
    GRADCOMP_NO_FP_CONTRACT_BODY
    if (dense.size() != values.size())
      detail::fail("decompress_add", "dense size ", dense.size(), " does not match payload dim ", values.size());
    for (std::size_t i = 0; i < values.size(); ++i) dense[i] = detail::add_scaled(dense[i], alpha, values[i]);
  }

  std::size_t sent_elements() const noexcept { return values.size(); }

  std::size_t wire_bytes() const {
    return detail::checked_add(detail::header_bytes,
                               detail::checked_mul(values.size(), sizeof(T), "wire_bytes", "payload"), "wire_bytes",
                               "payload");
  }

  std::size_t encode_to(std::span<std::byte> dst) const {
    detail::byte_writer w(dst, "encode");
    detail::put_header<T>(w, detail::wire_kind::dense, 0, values.size());
    w.put_array(values.data(), values.size());
    return w.written();
  }

  void decode_from(std::span<const std::byte> src) {
    const char* where = "decode<dense_vector>";
    detail::byte_reader r(src, where);
    const auto h = detail::get_header<T>(r, detail::wire_kind::dense);
    if (h.index_bytes != 0) detail::fail(where, "malformed buffer: index width ", h.index_bytes, " (must be 0)");
    const auto bytes = r.take(detail::checked_mul(h.dim, sizeof(T), where, "values"), "values");
    r.finish();
    values.resize(h.dim);
    detail::copy_le_array(bytes, values.data(), h.dim);
  }

  friend bool operator==(const dense_vector&, const dense_vector&) = default;
};

}  // namespace gradcomp
