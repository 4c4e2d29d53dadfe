#pragma once
// The tensor boundary: how a Python object's memory reaches gradcomp without a copy.
//
// Any object with __dlpack__ (torch.Tensor, numpy.ndarray, cupy, jax) is borrowed through
// DLPack; other objects through the buffer protocol (bytes, bytearray, memoryview, array).
// The view is valid while the returned tensor_view (which holds the exporter's capsule or
// buffer) lives; the memory stays the caller's. One build serves every PyTorch version,
// since DLPack is a C ABI.
//
// The device is part of the view: a CUDA tensor is refused here with a clear message (these
// are the host functions); gradcomp.cuda takes CUDA tensors through cuda_feedback.cpp.
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace gradcomp::python {

namespace py = pybind11;

enum class access { read, write };

/// The element types the bindings accept.
enum class element { float32, uint8 };

/// A borrowed, C-contiguous block of memory from a Python object.
struct tensor_view {
  void* data = nullptr;
  std::size_t size = 0;  // elements
  py::object keep;       // the DLPack capsule, or the object whose buffer is borrowed
  std::shared_ptr<py::buffer_info> buffer;  // the buffer export, released with the view

  template <class T>
  std::span<T> as() const noexcept { return {static_cast<T*>(data), size}; }
};

/// Borrows obj's memory as `want` elements; `name` is the argument's name for errors.
/// Throws TypeError (not an array, wrong dtype, wrong device) or ValueError (not
/// contiguous, read-only when written).
tensor_view borrow(py::handle obj, const char* name, element want, access how);

inline std::span<const float> read_floats(const tensor_view& v) { return v.as<const float>(); }
inline std::span<float> write_floats(const tensor_view& v) { return v.as<float>(); }

}  // namespace gradcomp::python
