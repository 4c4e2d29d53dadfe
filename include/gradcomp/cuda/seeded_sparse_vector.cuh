#pragma once
// gc::cuda::seeded_sparse_vector<T, Index>: what random-k produces on the GPU. The fields of
// gc::seeded_sparse_vector: dim, seed and step on the host (they are known before the
// kernels run), the indices (regenerated from them, never encoded) and the values in device
// memory, with the entry count on the device as in gc::cuda::sparse_vector (it is min(k, d),
// known in advance, but a device count lets decompress_add and graphs treat both payloads
// alike). encode() gives the host payload's bytes.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../compress.hpp"
#include "../error.hpp"
#include "../payload/seeded_sparse.hpp"
#include "../payload/sparse.hpp"
#include "sparse_vector.cuh"

namespace gradcomp::cuda {

template <std::floating_point T, std::unsigned_integral Index = std::uint32_t>
class seeded_sparse_vector {
 public:
  using value_type = T;
  using index_type = Index;
  using host_type = gradcomp::seeded_sparse_vector<T, Index>;

  std::size_t dim() const noexcept { return entries_.dim(); }
  std::uint64_t seed() const noexcept { return seed_; }
  std::uint64_t step() const noexcept { return step_; }
  std::size_t capacity() const noexcept { return entries_.capacity(); }
  Index* indices() noexcept { return entries_.indices(); }
  const Index* indices() const noexcept { return entries_.indices(); }
  T* values() noexcept { return entries_.values(); }
  const T* values() const noexcept { return entries_.values(); }
  std::uint64_t* count() noexcept { return entries_.count(); }
  const std::uint64_t* count() const noexcept { return entries_.count(); }
  /// The (index, value) entries as a device sparse payload (decompress_add reads them).
  const sparse_vector<T, Index>& entries() const noexcept { return entries_; }

  /// For kernels: dimension d, room for `capacity` entries, and the stream position.
  void prepare(std::size_t d, std::size_t capacity, std::uint64_t seed, std::uint64_t step) {
    entries_.prepare(d, capacity);
    seed_ = seed;
    step_ = step;
  }

  /// The encoded size of a payload with nnz values.
  static std::size_t wire_bytes_for(std::size_t nnz) { return host_type::wire_bytes_for(nnz); }

  /// The same message as a host gc::seeded_sparse_vector (synchronises).
  void to_host(host_type& out, cudaStream_t stream = nullptr) const {
    gradcomp::sparse_vector<T, Index> plain;
    entries_.to_host(plain, stream);
    out.dim = plain.dim;
    out.seed = seed_;
    out.step = step_;
    out.indices = std::move(plain.indices);
    out.values = std::move(plain.values);
  }
  host_type to_host(cudaStream_t stream = nullptr) const {
    host_type out;
    to_host(out, stream);
    return out;
  }

  /// Replaces this message by a host one (its indices as decode regenerated them; checked
  /// ascending and below dim). Synchronises.
  void from_host(const host_type& in, cudaStream_t stream = nullptr) {
    gradcomp::sparse_vector<T, Index> plain;
    plain.dim = in.dim;
    plain.indices = in.indices;
    plain.values = in.values;
    entries_.from_host(plain, stream);
    seed_ = in.seed;
    step_ = in.step;
  }

  /// The wire bytes of this message: those of the host payload (synchronises).
  std::vector<std::byte> encode(cudaStream_t stream = nullptr) const { return gradcomp::encode(to_host(stream)); }

  friend void swap(seeded_sparse_vector& a, seeded_sparse_vector& b) noexcept {
    swap(a.entries_, b.entries_);
    std::swap(a.seed_, b.seed_);
    std::swap(a.step_, b.step_);
  }

 private:
  sparse_vector<T, Index> entries_;
  std::uint64_t seed_ = 0;
  std::uint64_t step_ = 0;
};

}  // namespace gradcomp::cuda
