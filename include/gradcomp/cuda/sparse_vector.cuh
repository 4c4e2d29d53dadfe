#pragma once
// gc::cuda::sparse_vector<T, Index>: what hard-threshold and Top-k produce on the GPU, in
// device memory. The fields are those of gc::sparse_vector (dim, ascending indices, values),
// except that the entry count lives on the device too, so that a kernel can write it and a
// CUDA graph can replay the call without the host reading it. Reading it (nnz(), to_host())
// synchronises with the stream; encode() gives the bytes of the host payload's encode(),
// byte for byte.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../compress.hpp"
#include "../error.hpp"
#include "../payload/sparse.hpp"
#include "error.cuh"
#include "memory.cuh"

namespace gradcomp::cuda {

template <std::floating_point T, std::unsigned_integral Index = std::uint32_t>
class sparse_vector {
 public:
  using value_type = T;
  using index_type = Index;
  using host_type = gradcomp::sparse_vector<T, Index>;

  /// The encoded size of a payload with nnz entries.
  static std::size_t wire_bytes_for(std::size_t nnz) { return host_type::wire_bytes_for(nnz); }

  /// An empty message of dimension 0 (its count is written on the first use: prepare() alone
  /// does not write it).
  sparse_vector() : count_(1) { detail::check(cudaMemset(count_.data(), 0, sizeof(std::uint64_t)), "sparse_vector", "cudaMemset"); }

  std::size_t dim() const noexcept { return dim_; }
  /// Room for entries: the kernels write at most this many (hard-threshold: d; Top-k: k).
  std::size_t capacity() const noexcept { return indices_.size(); }
  Index* indices() noexcept { return indices_.data(); }
  const Index* indices() const noexcept { return indices_.data(); }
  T* values() noexcept { return values_.data(); }
  const T* values() const noexcept { return values_.data(); }
  /// The entry count, in device memory (one std::uint64_t).
  std::uint64_t* count() noexcept { return count_.data(); }
  const std::uint64_t* count() const noexcept { return count_.data(); }

  /// For kernels: dimension d and room for `capacity` entries (storage kept when it fits).
  void prepare(std::size_t d, std::size_t capacity) {
    dim_ = d;
    indices_.resize(capacity);
    values_.resize(capacity);
  }

  /// The entry count; waits for the stream's work on this payload.
  std::size_t nnz(cudaStream_t stream = nullptr) const {
    std::uint64_t n = 0;
    detail::check(cudaMemcpyAsync(&n, count_.data(), sizeof n, cudaMemcpyDeviceToHost, stream), "sparse_vector::nnz",
                  "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "sparse_vector::nnz", "cudaStreamSynchronize");
    return static_cast<std::size_t>(n);
  }

  /// The same message as a host gc::sparse_vector (synchronises).
  void to_host(gradcomp::sparse_vector<T, Index>& out, cudaStream_t stream = nullptr) const {
    const std::size_t n = nnz(stream);
    if (n > capacity())
      throw runtime_error("gradcomp::cuda::sparse_vector::to_host: the device count " + std::to_string(n) +
                              " exceeds the capacity " + std::to_string(capacity()) +
                              " (a payload no kernel has written yet?)",
                          cudaErrorInvalidValue);
    out.dim = dim_;
    out.indices.resize(n);
    out.values.resize(n);
    if (n > 0) {
      detail::check(cudaMemcpyAsync(out.indices.data(), indices_.data(), n * sizeof(Index), cudaMemcpyDeviceToHost, stream),
                    "sparse_vector::to_host", "cudaMemcpyAsync");
      detail::check(cudaMemcpyAsync(out.values.data(), values_.data(), n * sizeof(T), cudaMemcpyDeviceToHost, stream),
                    "sparse_vector::to_host", "cudaMemcpyAsync");
    }
    detail::check(cudaStreamSynchronize(stream), "sparse_vector::to_host", "cudaStreamSynchronize");
  }
  gradcomp::sparse_vector<T, Index> to_host(cudaStream_t stream = nullptr) const {
    gradcomp::sparse_vector<T, Index> out;
    to_host(out, stream);
    return out;
  }

  /// Replaces this message by a host one (validated as decode validates it: indices
  /// ascending and below dim). Synchronises.
  void from_host(const gradcomp::sparse_vector<T, Index>& in, cudaStream_t stream = nullptr) {
    if (in.indices.size() != in.values.size())
      gradcomp::detail::fail("cuda::sparse_vector::from_host", in.indices.size(), " indices but ", in.values.size(),
                             " values");
    for (std::size_t j = 0; j < in.indices.size(); ++j)
      if (in.indices[j] >= in.dim || (j > 0 && in.indices[j] <= in.indices[j - 1]))
        gradcomp::detail::fail("cuda::sparse_vector::from_host", "index ", in.indices[j], " at entry ", j,
                               " is not ascending below dim ", in.dim);
    prepare(in.dim, in.indices.size());
    const std::uint64_t n = in.indices.size();
    detail::check(cudaMemcpyAsync(count_.data(), &n, sizeof n, cudaMemcpyHostToDevice, stream),
                  "sparse_vector::from_host", "cudaMemcpyAsync");
    if (n > 0) {
      detail::check(cudaMemcpyAsync(indices_.data(), in.indices.data(), n * sizeof(Index), cudaMemcpyHostToDevice, stream),
                    "sparse_vector::from_host", "cudaMemcpyAsync");
      detail::check(cudaMemcpyAsync(values_.data(), in.values.data(), n * sizeof(T), cudaMemcpyHostToDevice, stream),
                    "sparse_vector::from_host", "cudaMemcpyAsync");
    }
    detail::check(cudaStreamSynchronize(stream), "sparse_vector::from_host", "cudaStreamSynchronize");
  }

  /// The wire bytes of this message: those of the host payload (synchronises).
  std::vector<std::byte> encode(cudaStream_t stream = nullptr) const { return gradcomp::encode(to_host(stream)); }

  friend void swap(sparse_vector& a, sparse_vector& b) noexcept {
    std::swap(a.dim_, b.dim_);
    swap(a.indices_, b.indices_);
    swap(a.values_, b.values_);
    swap(a.count_, b.count_);
  }

 private:
  std::size_t dim_ = 0;
  device_buffer<Index> indices_;
  device_buffer<T> values_;
  device_buffer<std::uint64_t> count_;
};

}  // namespace gradcomp::cuda
