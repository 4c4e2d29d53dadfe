// The tensor boundary (tensor.hpp): DLPack first, the buffer protocol otherwise.
#include "tensor.hpp"

#include <dlpack/dlpack.h>

#include <string>
#include <vector>

namespace gradcomp::python {

namespace {

const char* element_name(element e) { return e == element::float32 ? "float32" : "uint8"; }

std::string dtype_name(DLDataType t) {
  std::string base = t.code == kDLFloat ? "float" : t.code == kDLInt ? "int" : t.code == kDLUInt ? "uint"
                     : t.code == kDLBfloat ? "bfloat" : "code" + std::to_string(t.code) + "_";
  std::string s = base + std::to_string(t.bits);
  if (t.lanes != 1) s += "x" + std::to_string(t.lanes);
  return s;
}

bool matches(DLDataType t, element want) {
  if (t.lanes != 1) return false;
  return want == element::float32 ? (t.code == kDLFloat && t.bits == 32) : (t.code == kDLUInt && t.bits == 8);
}

std::string device_name(int type) {
  switch (type) {
    case kDLCPU: return "CPU";
    case kDLCUDA: return "CUDA";
    case kDLCUDAHost: return "CUDA host";
    case kDLROCM: return "ROCm";
    default: return "device type " + std::to_string(type);
  }
}

/// Whether shape/strides (in elements) describe a C-contiguous block; size-1 dimensions
/// may carry any stride (PyTorch gives them arbitrary ones).
bool c_contiguous(int ndim, const std::int64_t* shape, const std::int64_t* strides) {
  if (strides == nullptr) return true;
  std::int64_t expected = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] == 0) return true;
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

std::string shape_text(int ndim, const std::int64_t* v) {
  std::string s = "(";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (ndim == 1 ? ",)" : ")");
}

[[noreturn]] void not_contiguous(const char* name, int ndim, const std::int64_t* shape, const std::int64_t* strides) {
  throw py::value_error(std::string("gradcomp: ") + name + " is not contiguous (shape " + shape_text(ndim, shape) +
                        ", strides " + shape_text(ndim, strides) +
                        " in elements); pass a contiguous tensor (.contiguous() in PyTorch, "
                        "numpy.ascontiguousarray in NumPy)");
}

tensor_view from_dlpack(py::handle obj, const char* name, element want, access how) {
  // __dlpack_device__ first: a CUDA tensor must not be exported without a stream.
  if (py::hasattr(obj, "__dlpack_device__")) {
    const auto dev = obj.attr("__dlpack_device__")().cast<std::pair<int, int>>();
    if (dev.first != kDLCPU)
      throw py::type_error(std::string("gradcomp: ") + name + " is on " + device_name(dev.first) + " device " +
                           std::to_string(dev.second) +
                           "; gradcomp's host functions take host tensors (move it with .cpu(); "
                           "gradcomp.cuda.ErrorFeedback takes CUDA tensors)");
  }
  py::object capsule = obj.attr("__dlpack__")();
  auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  if (managed == nullptr) throw py::error_already_set();
  // The capsule stays unconsumed: its destructor calls the exporter's deleter when the view
  // (which holds it) goes away, as for any borrowed DLPack tensor.
  const DLTensor& t = managed->dl_tensor;
  if (t.device.device_type != kDLCPU)
    throw py::type_error(std::string("gradcomp: ") + name + " is on " + device_name(t.device.device_type) +
                         "; gradcomp's host functions take host tensors");
  if (!matches(t.dtype, want))
    throw py::type_error(std::string("gradcomp: ") + name + " has dtype " + dtype_name(t.dtype) + ", expected " +
                         element_name(want) +
                         (want == element::float32 ? " (convert with .float() in PyTorch, .astype(numpy.float32) in NumPy)"
                                                   : ""));
  if (!c_contiguous(t.ndim, t.shape, t.strides)) not_contiguous(name, t.ndim, t.shape, t.strides);
  std::size_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= static_cast<std::size_t>(t.shape[i]);
  (void)how;  // DLPack cannot signal read-only memory; NumPy refuses to export it instead.
  tensor_view v;
  v.data = static_cast<std::byte*>(t.data) + t.byte_offset;
  v.size = n;
  v.keep = std::move(capsule);
  return v;
}

tensor_view from_buffer(py::handle obj, const char* name, element want, access how) {
  if (!PyObject_CheckBuffer(obj.ptr()))
    throw py::type_error(std::string("gradcomp: ") + name + " must be a tensor or an array (an object with __dlpack__ " +
                         "or the buffer protocol), got " + std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  auto buffer = py::reinterpret_borrow<py::buffer>(obj);
  py::buffer_info info;
  try {
    info = buffer.request(how == access::write);
  } catch (py::error_already_set&) {
    if (how == access::write)
      throw py::value_error(std::string("gradcomp: ") + name + " is read-only, but gradcomp writes to it");
    throw;
  }
  const bool ok = want == element::float32 ? (info.itemsize == 4 && (info.format == "f" || info.format == "<f"))
                                           : (info.itemsize == 1 && (info.format == "B" || info.format == "b" ||
                                                                     info.format == "c"));
  if (!ok)
    throw py::type_error(std::string("gradcomp: ") + name + " has buffer format '" + info.format + "' (" +
                         std::to_string(info.itemsize) + " bytes per item), expected " + element_name(want));
  std::vector<std::int64_t> shape(info.shape.begin(), info.shape.end()), strides;
  for (const auto s : info.strides) strides.push_back(s / static_cast<std::int64_t>(info.itemsize));
  for (std::size_t i = 0; i < info.strides.size(); ++i)
    if (info.strides[i] % info.itemsize != 0) strides[i] = -1;  // never contiguous
  if (!c_contiguous(static_cast<int>(shape.size()), shape.data(), strides.data()))
    not_contiguous(name, static_cast<int>(shape.size()), shape.data(), strides.data());
  tensor_view v;
  v.data = info.ptr;
  v.size = static_cast<std::size_t>(info.size);
  v.keep = py::reinterpret_borrow<py::object>(obj);
  v.buffer = std::make_shared<py::buffer_info>(std::move(info));  // a bytearray cannot be resized meanwhile
  return v;
}

}  // namespace

tensor_view borrow(py::handle obj, const char* name, element want, access how) {
  if (py::hasattr(obj, "__dlpack__")) {
    try {
      return from_dlpack(obj, name, want, how);
    } catch (py::error_already_set& e) {
      // NumPy refuses to export read-only arrays through DLPack (BufferError); reading them
      // through the buffer protocol is fine, and writing them is reported there.
      if (!e.matches(PyExc_BufferError) || !PyObject_CheckBuffer(obj.ptr())) throw;
    }
  }
  return from_buffer(obj, name, want, how);
}

}  // namespace gradcomp::python
