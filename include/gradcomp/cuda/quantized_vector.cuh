#pragma once
// gc::cuda::quantized_vector<T>: what qsgd, terngrad, grid_rounding and dithering produce on
// the GPU. The fields of gc::quantized_vector: dim, scale and coding on the host (the
// compressors check the scale on the host before any level is written), the int32 levels in
// device memory, and the OR of their codes in device memory too, from which level_bits() (the
// fewest bits that hold every level's code) is read. encode() gives the host payload's bytes.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../compress.hpp"
#include "../detail/bitpack.hpp"
#include "../detail/bits.hpp"
#include "../error.hpp"
#include "../payload/quantized.hpp"
#include "error.cuh"
#include "memory.cuh"

namespace gradcomp::cuda {

template <std::floating_point T>
class quantized_vector {
 public:
  using value_type = T;
  using host_type = gradcomp::quantized_vector<T>;

  quantized_vector() : coded_or_(1) {
    detail::check(cudaMemset(coded_or_.data(), 0, sizeof(std::uint32_t)), "quantized_vector", "cudaMemset");
  }

  std::size_t dim() const noexcept { return dim_; }
  T scale() const noexcept { return scale_; }
  level_coding coding() const noexcept { return coding_; }
  std::int32_t* levels() noexcept { return levels_.data(); }
  const std::int32_t* levels() const noexcept { return levels_.data(); }
  /// The OR of the levels' codes under coding(), in device memory (one std::uint32_t).
  std::uint32_t* coded_or() noexcept { return coded_or_.data(); }

  /// For kernels: dimension d, the scale and the coding (the caller zeroes coded_or on its stream).
  void prepare(std::size_t d, T scale, level_coding coding = level_coding::linear) {
    dim_ = d;
    scale_ = scale;
    coding_ = coding;
    levels_.resize(d);
  }

  /// Bits per level on the wire (synchronises).
  unsigned level_bits(cudaStream_t stream = nullptr) const {
    std::uint32_t bits_or = 0;
    detail::check(cudaMemcpyAsync(&bits_or, coded_or_.data(), sizeof bits_or, cudaMemcpyDeviceToHost, stream),
                  "quantized_vector::level_bits", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "quantized_vector::level_bits", "cudaStreamSynchronize");
    return gradcomp::detail::bits_to_hold(bits_or);
  }

  /// Every element is sent: d, as gc::quantized_vector::sent_elements.
  std::size_t sent_elements() const noexcept { return dim_; }
  /// The encoded size (reads level_bits: synchronises).
  std::size_t wire_bytes(cudaStream_t stream = nullptr) const {
    host_type shape;
    shape.dim = dim_;
    shape.level_bits = level_bits(stream);
    return shape.wire_bytes();
  }

  /// The same message as a host gc::quantized_vector (synchronises).
  void to_host(host_type& out, cudaStream_t stream = nullptr) const {
    out.level_bits = level_bits(stream);
    out.dim = dim_;
    out.scale = scale_;
    out.coding = coding_;
    out.levels.resize(dim_);
    if (dim_ > 0)
      detail::check(cudaMemcpyAsync(out.levels.data(), levels_.data(), dim_ * sizeof(std::int32_t),
                                    cudaMemcpyDeviceToHost, stream),
                    "quantized_vector::to_host", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "quantized_vector::to_host", "cudaStreamSynchronize");
  }
  host_type to_host(cudaStream_t stream = nullptr) const {
    host_type out;
    to_host(out, stream);
    return out;
  }

  /// Replaces this message by a host one (validated as decode validates it). Synchronises.
  void from_host(const host_type& in, cudaStream_t stream = nullptr) {
    in.validate("cuda::quantized_vector::from_host");
    prepare(in.dim, in.scale, in.coding);
    // The OR of the codes as the sender's level_bits allows: the largest code of that width.
    const std::uint32_t bits_or = in.level_bits >= 32 ? 0x80000000u : (in.level_bits <= 1 ? 0u : 1u << (in.level_bits - 1));
    detail::check(cudaMemcpyAsync(coded_or_.data(), &bits_or, sizeof bits_or, cudaMemcpyHostToDevice, stream),
                  "quantized_vector::from_host", "cudaMemcpyAsync");
    if (in.dim > 0)
      detail::check(cudaMemcpyAsync(levels_.data(), in.levels.data(), in.dim * sizeof(std::int32_t),
                                    cudaMemcpyHostToDevice, stream),
                    "quantized_vector::from_host", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "quantized_vector::from_host", "cudaStreamSynchronize");
  }

  /// The wire bytes of this message: those of the host payload (synchronises).
  std::vector<std::byte> encode(cudaStream_t stream = nullptr) const { return gradcomp::encode(to_host(stream)); }

  friend void swap(quantized_vector& a, quantized_vector& b) noexcept {
    std::swap(a.dim_, b.dim_);
    std::swap(a.scale_, b.scale_);
    std::swap(a.coding_, b.coding_);
    swap(a.levels_, b.levels_);
    swap(a.coded_or_, b.coded_or_);
  }

 private:
  std::size_t dim_ = 0;
  T scale_ = T(0);
  level_coding coding_ = level_coding::linear;
  device_buffer<std::int32_t> levels_;
  device_buffer<std::uint32_t> coded_or_;
};

}  // namespace gradcomp::cuda
