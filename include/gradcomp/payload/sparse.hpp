#pragma once
// sparse_vector: what sparsifiers (top_k, hard_threshold) send.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../detail/bits.hpp"
#include "../detail/wire.hpp"
#include "../detail/scatter.hpp"
#include "../error.hpp"

namespace gradcomp {

/// A sparse vector of dimension `dim`: values[j] sits at indices[j]; indices are strictly
/// ascending and below dim. On the wire: header, count (u64), indices, values. Indices travel
/// as 4 bytes (Index of at most 32 bits, so uint8_t and uint16_t too) or 8 bytes (64-bit).
template <std::floating_point T, std::unsigned_integral Index = std::uint32_t>
struct sparse_vector {
  using value_type = T;
  using index_type = Index;
  static_assert(sizeof(Index) <= 8, "sparse_vector: indices wider than 64 bits have no wire format");

  /// Bytes per index on the wire: the format knows 4 and 8 only.
  static constexpr std::size_t wire_index_bytes = sizeof(Index) <= 4 ? 4 : 8;

  std::size_t dim = 0;
  std::vector<Index> indices;
  std::vector<T> values;

  /// Number of stored entries.
  std::size_t nnz() const noexcept { return indices.size(); }

  /// Empties the vector and sets its dimension, keeping the allocated capacity.
  void reset(std::size_t new_dim) {
    detail::check_index_fits<Index>(new_dim, "sparse_vector");
    dim = new_dim;
    indices.clear();
    values.clear();
  }

  /// Fails unless the invariants hold (sizes agree, indices ascending and below dim).
  void validate(const char* where) const {
    detail::check_index_fits<Index>(dim, where);
    if (indices.size() != values.size())
      detail::fail(where, "sparse_vector has ", indices.size(), " indices but ", values.size(), " values");
    for (std::size_t j = 0; j < indices.size(); ++j) {
      if (indices[j] >= dim) detail::fail(where, "index ", indices[j], " at position ", j, " is >= dim ", dim);
      if (j > 0 && indices[j] <= indices[j - 1])
        detail::fail(where, "indices not strictly ascending at position ", j, " (", indices[j - 1], ", ",
                     indices[j], ")");
    }
  }

  /// dense[indices[j]] += alpha * values[j]. With alpha = 1 or -1 this is exact up to
  /// the one rounding of the addition.
  void decompress_add(std::span<T> dense, T alpha = T(1)) const {
    detail::scatter_add(dim, indices, values, dense, alpha);
  }

  std::size_t sent_elements() const noexcept { return indices.size(); }

  std::size_t wire_bytes() const { return wire_bytes_for(indices.size()); }

  /// The encoded size of a sparse_vector<T, Index> with nnz entries (a device payload's too).
  static std::size_t wire_bytes_for(std::size_t nnz) {
    const char* where = "wire_bytes";
    const std::size_t per_entry = wire_index_bytes + sizeof(T);
    return detail::checked_add(detail::header_bytes + 8, detail::checked_mul(nnz, per_entry, where, "payload"), where,
                               "payload");
  }

  std::size_t encode_to(std::span<std::byte> dst) const {
    validate("encode");
    detail::byte_writer w(dst, "encode");
    detail::put_header<T>(w, detail::wire_kind::sparse, wire_index_bytes, dim);
    w.put(static_cast<std::uint64_t>(indices.size()));
    if constexpr (sizeof(Index) == wire_index_bytes) {
      w.put_array(indices.data(), indices.size());
    } else {  // uint8_t / uint16_t indices widen to the 4-byte wire format
      for (const Index i : indices) w.put(static_cast<std::uint32_t>(i));
    }
    w.put_array(values.data(), values.size());
    return w.written();
  }

  /// Replaces *this by the payload in src, or throws gc::error and leaves *this unchanged.
  void decode_from(std::span<const std::byte> src) {
    const char* where = "decode<sparse_vector>";
    detail::byte_reader r(src, where);
    const auto h = detail::get_header<T>(r, detail::wire_kind::sparse);
    if (h.index_bytes != 4 && h.index_bytes != 8)
      detail::fail(where, "malformed buffer: index width ", h.index_bytes, " (must be 4 or 8)");
    detail::check_index_fits<Index>(h.dim, where);
    const auto count64 = r.get<std::uint64_t>("count");
    if (count64 > h.dim) detail::fail(where, "malformed buffer: count ", count64, " exceeds dim ", h.dim);
    const auto count = static_cast<std::size_t>(count64);
    const auto index_bytes = r.take(detail::checked_mul(count, h.index_bytes, where, "index block"), "indices");
    const auto value_bytes = r.take(detail::checked_mul(count, sizeof(T), where, "value block"), "values");
    r.finish();

    // Validate every index before touching *this, then fill it in place (reusing capacity).
    const auto index_at = [&](std::size_t j) -> std::uint64_t {
      return h.index_bytes == 4 ? detail::load_le<std::uint32_t>(index_bytes.data() + 4 * j)
                                : detail::load_le<std::uint64_t>(index_bytes.data() + 8 * j);
    };
    for (std::size_t j = 0; j < count; ++j) {
      const std::uint64_t i = index_at(j);
      if (i >= h.dim) detail::fail(where, "malformed buffer: index ", i, " at position ", j, " is >= dim ", h.dim);
      if (j > 0 && i <= index_at(j - 1))
        detail::fail(where, "malformed buffer: indices not strictly ascending at position ", j, " (",
                     index_at(j - 1), ", ", i, ")");
    }
    indices.resize(count);
    values.resize(count);
    for (std::size_t j = 0; j < count; ++j) indices[j] = static_cast<Index>(index_at(j));
    detail::copy_le_array(value_bytes, values.data(), count);
    dim = h.dim;
  }

  friend bool operator==(const sparse_vector&, const sparse_vector&) = default;
};

}  // namespace gradcomp
