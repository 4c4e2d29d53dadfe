#pragma once
// gc::cuda::bucket_quantized_vector<T>: what maxmin_quantizer produces on the GPU. The fields of
// gc::bucket_quantized_vector: dim, bucket_size and bits on the host, the per-bucket minima and
// grid units and the one-byte levels in device memory. Its size does not depend on the data,
// so nothing needs a device count. encode() gives the host payload's bytes.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "../compress.hpp"
#include "../error.hpp"
#include "../payload/bucket_quantized.hpp"
#include "error.cuh"
#include "memory.cuh"

namespace gradcomp::cuda {

template <std::floating_point T>
class bucket_quantized_vector {
 public:
  using value_type = T;
  using host_type = gradcomp::bucket_quantized_vector<T>;

  std::size_t dim() const noexcept { return dim_; }
  std::size_t bucket_size() const noexcept { return bucket_size_; }
  unsigned bits() const noexcept { return bits_; }
  std::size_t buckets() const noexcept { return gradcomp::detail::bucket_count(dim_, bucket_size_); }
  T* mins() noexcept { return mins_.data(); }
  const T* mins() const noexcept { return mins_.data(); }
  T* units() noexcept { return units_.data(); }
  const T* units() const noexcept { return units_.data(); }
  std::uint8_t* levels() noexcept { return levels_.data(); }
  const std::uint8_t* levels() const noexcept { return levels_.data(); }

  /// For kernels: dimension d, buckets of b (>= 1) elements, `bits`-bit levels. The storage
  /// is sized before any field changes: if it cannot be allocated, the message is kept.
  void prepare(std::size_t d, std::size_t b, unsigned bits) {
    if (b == 0) gradcomp::detail::fail("cuda::bucket_quantized_vector", "bucket_size must be >= 1 (got 0)");
    const std::size_t nb = gradcomp::detail::bucket_count(d, b);
    mins_.resize(nb);
    units_.resize(nb);
    levels_.resize(d);
    dim_ = d;
    bucket_size_ = b;
    bits_ = bits;
  }

  /// Every element is sent: d, as gc::bucket_quantized_vector::sent_elements.
  std::size_t sent_elements() const noexcept { return dim_; }
  /// The encoded size (known on the host).
  std::size_t wire_bytes() const {
    host_type shape;
    shape.dim = dim_;
    shape.bucket_size = bucket_size_;
    shape.bits = bits_;
    return shape.wire_bytes();
  }

  /// The same message as a host gc::bucket_quantized_vector (synchronises).
  void to_host(host_type& out, cudaStream_t stream = nullptr) const {
    const char* where = "bucket_quantized_vector::to_host";
    out.dim = dim_;
    out.bucket_size = bucket_size_;
    out.bits = bits_;
    out.mins.resize(buckets());
    out.units.resize(buckets());
    out.levels.resize(dim_);
    if (buckets() > 0) {
      detail::check(cudaMemcpyAsync(out.mins.data(), mins_.data(), buckets() * sizeof(T), cudaMemcpyDeviceToHost, stream),
                    where, "cudaMemcpyAsync");
      detail::check(
          cudaMemcpyAsync(out.units.data(), units_.data(), buckets() * sizeof(T), cudaMemcpyDeviceToHost, stream), where,
          "cudaMemcpyAsync");
    }
    if (dim_ > 0)
      detail::check(cudaMemcpyAsync(out.levels.data(), levels_.data(), dim_, cudaMemcpyDeviceToHost, stream), where,
                    "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), where, "cudaStreamSynchronize");
  }
  host_type to_host(cudaStream_t stream = nullptr) const {
    host_type out;
    to_host(out, stream);
    return out;
  }

  /// Replaces this message by a host one (validated as decode validates it, so every level
  /// decodes to a finite value). Synchronises.
  void from_host(const host_type& in, cudaStream_t stream = nullptr) {
    const char* where = "bucket_quantized_vector::from_host";
    in.validate("cuda::bucket_quantized_vector::from_host");
    prepare(in.dim, in.bucket_size, in.bits);
    if (buckets() > 0) {
      detail::check(cudaMemcpyAsync(mins_.data(), in.mins.data(), buckets() * sizeof(T), cudaMemcpyHostToDevice, stream),
                    where, "cudaMemcpyAsync");
      detail::check(cudaMemcpyAsync(units_.data(), in.units.data(), buckets() * sizeof(T), cudaMemcpyHostToDevice, stream),
                    where, "cudaMemcpyAsync");
    }
    if (dim_ > 0)
      detail::check(cudaMemcpyAsync(levels_.data(), in.levels.data(), dim_, cudaMemcpyHostToDevice, stream), where,
                    "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), where, "cudaStreamSynchronize");
  }

  /// The wire bytes of this message: those of the host payload (synchronises).
  std::vector<std::byte> encode(cudaStream_t stream = nullptr) const { return gradcomp::encode(to_host(stream)); }

  friend void swap(bucket_quantized_vector& a, bucket_quantized_vector& b) noexcept {
    std::swap(a.dim_, b.dim_);
    std::swap(a.bucket_size_, b.bucket_size_);
    std::swap(a.bits_, b.bits_);
    swap(a.mins_, b.mins_);
    swap(a.units_, b.units_);
    swap(a.levels_, b.levels_);
  }

 private:
  std::size_t dim_ = 0;
  std::size_t bucket_size_ = 1;
  unsigned bits_ = 8;
  device_buffer<T> mins_;
  device_buffer<T> units_;
  device_buffer<std::uint8_t> levels_;
};

}  // namespace gradcomp::cuda
