#pragma once
// The bridge between the Python module and the CUDA back end: error feedback on device memory
// behind an interface that names no CUDA type, so that the pybind11 code (cuda_feedback.cpp,
// compiled by the C++ compiler) never meets nvcc, and the CUDA code (cuda_bridge.cu, compiled
// by nvcc where the module is built with CUDA; cuda_bridge_none.cpp elsewhere) never meets
// pybind11. Device pointers and streams cross it as integers (torch's data_ptr() and
// cuda_stream).
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include <gradcomp/gradcomp.hpp>

namespace gradcomp::python::cuda_bridge {

/// The gradient element types a device step reads (the residual is float32).
enum class gradient_type { float32, bfloat16, float16 };

/// gc::cuda::error_feedback<C, float> for one compressor C.
class device_feedback {
 public:
  virtual ~device_feedback() = default;
  /// One step on the dim() elements of type t at device address g, on the CUDA stream
  /// `stream` (0: the default stream); returns the message's wire bytes (gc::encode of the
  /// host payload). Throws as gc::cuda::error_feedback::compress; nothing changes then.
  virtual std::vector<std::byte> compress(std::uintptr_t g, gradient_type t, float scale, std::uintptr_t stream) = 0;
  virtual void undo() = 0;
  virtual bool can_undo() const = 0;
  virtual std::size_t dim() const = 0;
  virtual feedback_metrics metrics() const = 0;
  /// The compressor's step (seeded compressors; 0 for the others).
  virtual std::uint64_t step() const = 0;
  /// Copies the residual to dim() floats at device address dst (waits for the copy).
  virtual void copy_error(std::uintptr_t dst, std::uintptr_t stream) const = 0;
  /// Replaces the residual by dim() floats at device address src (gc::error if not finite).
  virtual void assign_error(std::uintptr_t src, std::uintptr_t stream) = 0;
};

/// The compressors with a CUDA kernel: X(C) for each (the list the trait and the explicit
/// instantiations of make_device_feedback share).
#define GRADCOMP_CUDA_BRIDGE_COMPRESSORS(X) \
  X(top_k) X(hard_threshold) X(random_k) X(unbiased_random_k) X(sign) X(scaled_sign) X(blockwise_sign) X(onebit) \
  X(qsgd) X(terngrad) X(dithering) X(grid_rounding) X(maxmin_quantizer) X(float16_cast) X(bfloat16_cast) \
  X(natural_compression)

#define GRADCOMP_CUDA_BRIDGE_IS(C) || std::same_as<T, C>
template <class T>
inline constexpr bool supported_v = false GRADCOMP_CUDA_BRIDGE_COMPRESSORS(GRADCOMP_CUDA_BRIDGE_IS);
#undef GRADCOMP_CUDA_BRIDGE_IS

/// Whether this module was built with the CUDA back end.
bool built();
/// CUDA devices this process sees (0 when built without CUDA or without a device).
int device_count();

/// Error feedback for c on vectors of dimension dim, in device memory of the current device
/// (throws std::runtime_error when the module was built without CUDA).
template <class C>
  requires supported_v<C>
std::unique_ptr<device_feedback> make_device_feedback(const C& c, std::size_t dim);

/// Explicit instantiations, in the file that defines make_device_feedback.
#define GRADCOMP_CUDA_BRIDGE_INSTANTIATE(C) template std::unique_ptr<device_feedback> make_device_feedback(const C&, std::size_t);

}  // namespace gradcomp::python::cuda_bridge
