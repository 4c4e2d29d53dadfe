#pragma once
// gc::cuda::two_level_vector<T>: what onebit produces on the GPU. The fields of
// gc::two_level_vector: dim and block_size on the host, the per-block lows and highs and the
// bits (bit i of word i / 64 set: element i decodes to its block's low; bits past dim zero) in
// device memory. Its size does not depend on the data, so nothing needs a device count.
// encode() gives the host payload's bytes.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../compress.hpp"
#include "../detail/bits.hpp"
#include "../error.hpp"
#include "../payload/two_level.hpp"
#include "error.cuh"
#include "memory.cuh"

namespace gradcomp::cuda {

template <std::floating_point T>
class two_level_vector {
 public:
  using value_type = T;
  using host_type = gradcomp::two_level_vector<T>;

  std::size_t dim() const noexcept { return dim_; }
  std::size_t block_size() const noexcept { return block_size_; }
  std::size_t blocks() const noexcept { return host_type::block_count(dim_, block_size_); }
  T* lows() noexcept { return lows_.data(); }
  const T* lows() const noexcept { return lows_.data(); }
  T* highs() noexcept { return highs_.data(); }
  const T* highs() const noexcept { return highs_.data(); }
  std::uint64_t* negative() noexcept { return negative_.data(); }
  const std::uint64_t* negative() const noexcept { return negative_.data(); }

  /// For kernels: dimension d, blocks of b elements (b >= 1).
  void prepare(std::size_t d, std::size_t b) {
    if (b == 0) gradcomp::detail::fail("cuda::two_level_vector", "block_size must be >= 1 (got 0)");
    dim_ = d;
    block_size_ = b;
    lows_.resize(host_type::block_count(d, b));
    highs_.resize(host_type::block_count(d, b));
    negative_.resize(gradcomp::detail::words_for_bits(d));
  }

  /// Every element is sent: d, as gc::two_level_vector::sent_elements.
  std::size_t sent_elements() const noexcept { return dim_; }
  /// The encoded size (known on the host).
  std::size_t wire_bytes() const {
    host_type shape;
    shape.dim = dim_;
    shape.block_size = block_size_;
    return shape.wire_bytes();
  }

  /// The same message as a host gc::two_level_vector (synchronises).
  void to_host(host_type& out, cudaStream_t stream = nullptr) const {
    const char* where = "two_level_vector::to_host";
    out.reset(dim_, block_size_);
    copy(out.lows.data(), lows_.data(), out.lows.size() * sizeof(T), cudaMemcpyDeviceToHost, stream, where);
    copy(out.highs.data(), highs_.data(), out.highs.size() * sizeof(T), cudaMemcpyDeviceToHost, stream, where);
    copy(out.negative.data(), negative_.data(), out.negative.size() * sizeof(std::uint64_t), cudaMemcpyDeviceToHost,
         stream, where);
    detail::check(cudaStreamSynchronize(stream), where, "cudaStreamSynchronize");
  }
  host_type to_host(cudaStream_t stream = nullptr) const {
    host_type out;
    to_host(out, stream);
    return out;
  }

  /// Replaces this message by a host one (validated as decode validates it). Synchronises.
  void from_host(const host_type& in, cudaStream_t stream = nullptr) {
    const char* where = "two_level_vector::from_host";
    in.validate("cuda::two_level_vector::from_host");
    prepare(in.dim, in.block_size);
    copy(lows_.data(), in.lows.data(), in.lows.size() * sizeof(T), cudaMemcpyHostToDevice, stream, where);
    copy(highs_.data(), in.highs.data(), in.highs.size() * sizeof(T), cudaMemcpyHostToDevice, stream, where);
    copy(negative_.data(), in.negative.data(), in.negative.size() * sizeof(std::uint64_t), cudaMemcpyHostToDevice,
         stream, where);
    detail::check(cudaStreamSynchronize(stream), where, "cudaStreamSynchronize");
  }

  /// The wire bytes of this message: those of the host payload (synchronises).
  std::vector<std::byte> encode(cudaStream_t stream = nullptr) const { return gradcomp::encode(to_host(stream)); }

  friend void swap(two_level_vector& a, two_level_vector& b) noexcept {
    std::swap(a.dim_, b.dim_);
    std::swap(a.block_size_, b.block_size_);
    swap(a.lows_, b.lows_);
    swap(a.highs_, b.highs_);
    swap(a.negative_, b.negative_);
  }

 private:
  /// An asynchronous copy of `bytes` (none for 0).
  static void copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream,
                   const char* where) {
    if (bytes != 0) detail::check(cudaMemcpyAsync(dst, src, bytes, kind, stream), where, "cudaMemcpyAsync");
  }

  std::size_t dim_ = 0;
  std::size_t block_size_ = 1;
  device_buffer<T> lows_;
  device_buffer<T> highs_;
  device_buffer<std::uint64_t> negative_;
};

}  // namespace gradcomp::cuda
