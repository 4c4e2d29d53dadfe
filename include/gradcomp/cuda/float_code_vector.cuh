#pragma once
// gc::cuda::float_code_vector<T>: what float16_cast, bfloat16_cast and natural_compression
// produce on the GPU. The fields of gc::float_code_vector: dim, format and scale_exponent on
// the host (the compressors decide them on the host, after their checks), the 16-bit codes in
// device memory. Its size does not depend on the data, so nothing needs a device count.
// encode() gives the host payload's bytes.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "../compress.hpp"
#include "../detail/float_codes.hpp"
#include "../payload/float_code.hpp"
#include "error.cuh"
#include "memory.cuh"

namespace gradcomp::cuda {

template <std::floating_point T>
class float_code_vector {
 public:
  using value_type = T;
  using host_type = gradcomp::float_code_vector<T>;

  std::size_t dim() const noexcept { return dim_; }
  code_format format() const noexcept { return format_; }
  std::int32_t scale_exponent() const noexcept { return scale_exponent_; }
  std::uint16_t* codes() noexcept { return codes_.data(); }
  const std::uint16_t* codes() const noexcept { return codes_.data(); }

  /// For kernels: dimension d, the format and the scale exponent (the codes are written next).
  void prepare(std::size_t d, code_format f, std::int32_t scale_exponent) {
    codes_.resize(d);
    dim_ = d;
    format_ = f;
    scale_exponent_ = scale_exponent;
  }

  /// Every element is sent: d, as gc::float_code_vector::sent_elements.
  std::size_t sent_elements() const noexcept { return dim_; }
  /// The encoded size (known on the host).
  std::size_t wire_bytes() const { return shape().wire_bytes(); }

  /// The same message as a host gc::float_code_vector (synchronises).
  void to_host(host_type& out, cudaStream_t stream = nullptr) const {
    out.dim = dim_;
    out.format = format_;
    out.scale_exponent = scale_exponent_;
    out.codes.resize(dim_);
    if (dim_ > 0)
      detail::check(cudaMemcpyAsync(out.codes.data(), codes_.data(), dim_ * sizeof(std::uint16_t),
                                    cudaMemcpyDeviceToHost, stream),
                    "float_code_vector::to_host", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "float_code_vector::to_host", "cudaStreamSynchronize");
  }
  host_type to_host(cudaStream_t stream = nullptr) const {
    host_type out;
    to_host(out, stream);
    return out;
  }

  /// Replaces this message by a host one (validated as decode validates it, so every code
  /// decodes to a finite value). Synchronises.
  void from_host(const host_type& in, cudaStream_t stream = nullptr) {
    in.validate("cuda::float_code_vector::from_host");
    prepare(in.dim, in.format, in.scale_exponent);
    if (in.dim > 0)
      detail::check(cudaMemcpyAsync(codes_.data(), in.codes.data(), in.dim * sizeof(std::uint16_t),
                                    cudaMemcpyHostToDevice, stream),
                    "float_code_vector::from_host", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "float_code_vector::from_host", "cudaStreamSynchronize");
  }

  /// The wire bytes of this message: those of the host payload (synchronises).
  std::vector<std::byte> encode(cudaStream_t stream = nullptr) const { return gradcomp::encode(to_host(stream)); }

  friend void swap(float_code_vector& a, float_code_vector& b) noexcept {
    std::swap(a.dim_, b.dim_);
    std::swap(a.format_, b.format_);
    std::swap(a.scale_exponent_, b.scale_exponent_);
    swap(a.codes_, b.codes_);
  }

 private:
  /// The host payload without its codes: what the wire size depends on.
  host_type shape() const {
    host_type s;
    s.dim = dim_;
    s.format = format_;
    return s;
  }

  std::size_t dim_ = 0;
  code_format format_ = code_format::float16;
  std::int32_t scale_exponent_ = 0;
  device_buffer<std::uint16_t> codes_;
};

}  // namespace gradcomp::cuda
