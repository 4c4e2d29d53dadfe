#pragma once
// gc::cuda::sign_vector<T>: what scaled_sign and blockwise_sign produce on the GPU. The fields
// of gc::sign_vector: dim and block_size on the host, the per-block scales and the sign bits
// (bit i of word i / 64 set: element i is negative; bits past dim zero) in device memory.
// Its size does not depend on the data, so nothing needs a device count. encode() gives the
// host payload's bytes.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../compress.hpp"
#include "../detail/bits.hpp"
#include "../error.hpp"
#include "../payload/sign.hpp"
#include "error.cuh"
#include "memory.cuh"

namespace gradcomp::cuda {

template <std::floating_point T>
class sign_vector {
 public:
  using value_type = T;
  using host_type = gradcomp::sign_vector<T>;

  std::size_t dim() const noexcept { return dim_; }
  std::size_t block_size() const noexcept { return block_size_; }
  std::size_t blocks() const noexcept { return host_type::block_count(dim_, block_size_); }
  T* scales() noexcept { return scales_.data(); }
  const T* scales() const noexcept { return scales_.data(); }
  std::uint64_t* negative() noexcept { return negative_.data(); }
  const std::uint64_t* negative() const noexcept { return negative_.data(); }

  /// For kernels: dimension d, blocks of b elements (b >= 1).
  void prepare(std::size_t d, std::size_t b) {
    if (b == 0) gradcomp::detail::fail("cuda::sign_vector", "block_size must be >= 1 (got 0)");
    dim_ = d;
    block_size_ = b;
    scales_.resize(host_type::block_count(d, b));
    negative_.resize(gradcomp::detail::words_for_bits(d));
  }

  /// Every element is sent: d, as gc::sign_vector::sent_elements.
  std::size_t sent_elements() const noexcept { return dim_; }
  /// The encoded size (known on the host).
  std::size_t wire_bytes() const {
    host_type shape;
    shape.dim = dim_;
    shape.block_size = block_size_;
    return shape.wire_bytes();
  }

  /// The same message as a host gc::sign_vector (synchronises).
  void to_host(host_type& out, cudaStream_t stream = nullptr) const {
    out.reset(dim_, block_size_);
    if (!out.scales.empty())
      detail::check(cudaMemcpyAsync(out.scales.data(), scales_.data(), out.scales.size() * sizeof(T),
                                    cudaMemcpyDeviceToHost, stream),
                    "sign_vector::to_host", "cudaMemcpyAsync");
    if (!out.negative.empty())
      detail::check(cudaMemcpyAsync(out.negative.data(), negative_.data(), out.negative.size() * sizeof(std::uint64_t),
                                    cudaMemcpyDeviceToHost, stream),
                    "sign_vector::to_host", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "sign_vector::to_host", "cudaStreamSynchronize");
  }
  host_type to_host(cudaStream_t stream = nullptr) const {
    host_type out;
    to_host(out, stream);
    return out;
  }

  /// Replaces this message by a host one (validated as decode validates it). Synchronises.
  void from_host(const host_type& in, cudaStream_t stream = nullptr) {
    in.validate("cuda::sign_vector::from_host");
    prepare(in.dim, in.block_size);
    if (!in.scales.empty())
      detail::check(cudaMemcpyAsync(scales_.data(), in.scales.data(), in.scales.size() * sizeof(T),
                                    cudaMemcpyHostToDevice, stream),
                    "sign_vector::from_host", "cudaMemcpyAsync");
    if (!in.negative.empty())
      detail::check(cudaMemcpyAsync(negative_.data(), in.negative.data(), in.negative.size() * sizeof(std::uint64_t),
                                    cudaMemcpyHostToDevice, stream),
                    "sign_vector::from_host", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "sign_vector::from_host", "cudaStreamSynchronize");
  }

  /// The wire bytes of this message: those of the host payload (synchronises).
  std::vector<std::byte> encode(cudaStream_t stream = nullptr) const { return gradcomp::encode(to_host(stream)); }

  friend void swap(sign_vector& a, sign_vector& b) noexcept {
    std::swap(a.dim_, b.dim_);
    std::swap(a.block_size_, b.block_size_);
    swap(a.scales_, b.scales_);
    swap(a.negative_, b.negative_);
  }

 private:
  std::size_t dim_ = 0;
  std::size_t block_size_ = 1;
  device_buffer<T> scales_;
  device_buffer<std::uint64_t> negative_;
};

}  // namespace gradcomp::cuda
