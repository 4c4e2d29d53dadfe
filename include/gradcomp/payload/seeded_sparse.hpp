#pragma once
// seeded_sparse_vector: what random-k sends. Every worker derives the same indices from a
// shared (seed, step), so only the values travel; the receiver regenerates the indices.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../detail/bits.hpp"
#include "../detail/random.hpp"
#include "../detail/scatter.hpp"
#include "../detail/wire.hpp"
#include "../error.hpp"

namespace gradcomp {

/// A sparse vector whose indices are detail::shared_random_indices(dim, k, seed, step).
/// indices is kept in memory for decompress_add but is not part of the wire format:
/// on the wire, header (version 2), seed (u64), step (u64), k (u64), values. Decoding
/// regenerates the indices: O(k) memory, but O(dim) time for the dim the header claims, so a
/// receiver of untrusted bytes compares that field (bytes 8 to 15, little-endian) with the
/// dimension it expects before decoding.
template <std::floating_point T, std::unsigned_integral Index = std::uint32_t>
struct seeded_sparse_vector {
  using value_type = T;
  using index_type = Index;

  std::size_t dim = 0;
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  std::vector<Index> indices;  // regenerated from (dim, k, seed, step); never encoded
  std::vector<T> values;

  std::size_t nnz() const noexcept { return values.size(); }

  void decompress_add(std::span<T> dense, T alpha = T(1)) const {
    detail::scatter_add(dim, indices, values, dense, alpha);
  }

  std::size_t sent_elements() const noexcept { return values.size(); }

  std::size_t wire_bytes() const { return wire_bytes_for(values.size()); }

  /// The encoded size of a seeded_sparse_vector<T, Index> with nnz values (a device payload's too).
  static std::size_t wire_bytes_for(std::size_t nnz) {
    return detail::checked_add(detail::header_bytes + 24, detail::checked_mul(nnz, sizeof(T), "wire_bytes", "payload"),
                               "wire_bytes", "payload");
  }

  std::size_t encode_to(std::span<std::byte> dst) const {
    if (values.size() > dim) detail::fail("encode", "seeded_sparse_vector has ", values.size(), " values but dim ", dim);
    detail::check_index_fits<Index>(dim, "encode");
    detail::byte_writer w(dst, "encode");
    detail::put_header<T>(w, detail::wire_kind::seeded_sparse, 0, dim);
    w.put(seed);
    w.put(step);
    w.put(static_cast<std::uint64_t>(values.size()));
    w.put_array(values.data(), values.size());
    return w.written();
  }

  /// Replaces *this by the payload in src (regenerating the indices), or throws gc::error
  /// and leaves *this unchanged.
  void decode_from(std::span<const std::byte> src) {
    const char* where = "decode<seeded_sparse_vector>";
    detail::byte_reader r(src, where);
    const auto h = detail::get_header<T>(r, detail::wire_kind::seeded_sparse);
    if (h.index_bytes != 0) detail::fail(where, "malformed buffer: index width ", h.index_bytes, " (must be 0)");
    detail::check_index_fits<Index>(h.dim, where);
    const auto new_seed = r.get<std::uint64_t>("seed");
    const auto new_step = r.get<std::uint64_t>("step");
    const auto k64 = r.get<std::uint64_t>("count");
    if (k64 > h.dim) detail::fail(where, "malformed buffer: count ", k64, " exceeds dim ", h.dim);
    const auto k = static_cast<std::size_t>(k64);
    const auto value_bytes = r.take(detail::checked_mul(k, sizeof(T), where, "value block"), "values");
    r.finish();
    // O(k) scratch whatever dim says; O(dim) time (every index is hashed).
    detail::shared_random_indices(h.dim, k, new_seed, new_step, indices);
    values.resize(k);
    detail::copy_le_array(value_bytes, values.data(), k);
    dim = h.dim;
    seed = new_seed;
    step = new_step;
  }

  friend bool operator==(const seeded_sparse_vector&, const seeded_sparse_vector&) = default;
};

}  // namespace gradcomp
