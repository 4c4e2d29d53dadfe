// gradcomp._core.CudaErrorFeedback: error feedback on device memory (the CUDA back end, through
// cuda_bridge.hpp), and cuda_built() / cuda_device_count(). gradcomp/cuda.py wraps it for
// torch tensors; the DDP hook (gradcomp/torch.py) uses it for CUDA buckets.
#include <pybind11/pybind11.h>

#include <string>
#include <string_view>

#include "bindings.hpp"
#include "cuda_bridge.hpp"

namespace gradcomp::python {

std::unordered_map<PyObject*, cuda_feedback_factory>& cuda_feedback_factories() {
  static std::unordered_map<PyObject*, cuda_feedback_factory> factories;
  return factories;
}

namespace {

cuda_bridge::gradient_type parse_dtype(std::string_view name) {
  if (name == "float32") return cuda_bridge::gradient_type::float32;
  if (name == "bfloat16") return cuda_bridge::gradient_type::bfloat16;
  if (name == "float16") return cuda_bridge::gradient_type::float16;
  throw py::type_error("gradcomp.CudaErrorFeedback: the gradient must be float32, bfloat16 or float16, got '" +
                       std::string(name) + "'");
}

}  // namespace

void bind_cuda(py::module_& m) {
  using cuda_bridge::device_feedback;
  m.def("cuda_built", &cuda_bridge::built, "Whether this module was built with the CUDA back end.");
  m.def("cuda_device_count", &cuda_bridge::device_count, "CUDA devices this process sees (0 without the back end).");
  py::class_<device_feedback>(m, "CudaErrorFeedback",
                              "Error feedback with the residual in device memory (gc::cuda::error_feedback<C, "
                              "float>): the steps of ErrorFeedback, bit for bit, on a CUDA device. Low level: "
                              "pointers and streams are integers; gradcomp.cuda.ErrorFeedback takes torch tensors.")
      .def(py::init([](py::handle compressor, std::size_t dim) {
             const auto& factories = cuda_feedback_factories();
             const auto it = factories.find(reinterpret_cast<PyObject*>(Py_TYPE(compressor.ptr())));
             if (it == factories.end())
               throw py::type_error("gradcomp.CudaErrorFeedback: no CUDA kernel for " +
                                    std::string(py::str(py::type::handle_of(compressor).attr("__name__"))) +
                                    " (top_k, hard_threshold, random_k, unbiased_random_k, sign, scaled_sign, onebit, "
                                    "blockwise_sign, qsgd, terngrad, dithering, grid_rounding, maxmin_quantizer, float16_cast, "
                                    "bfloat16_cast and natural_compression have one)");
             return it->second(compressor, dim);
           }),
           py::arg("compressor"), py::arg("dim"))
      .def(
          "compress",
          [](device_feedback& f, std::uintptr_t g, std::string_view dtype, double scale, std::uintptr_t stream) {
            const auto t = parse_dtype(dtype);
            std::vector<std::byte> bytes;
            {
              py::gil_scoped_release unlocked;
              bytes = f.compress(g, t, static_cast<float>(scale), stream);
            }
            return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
          },
          py::arg("g"), py::arg("dtype"), py::arg("scale") = 1.0, py::kw_only(), py::arg("stream") = 0,
          "One step on the dim elements at device address g; returns the message's wire bytes.")
      .def("undo", &device_feedback::undo)
      .def_property_readonly("can_undo", &device_feedback::can_undo)
      .def_property_readonly("dim", &device_feedback::dim)
      .def_property_readonly("step", &device_feedback::step, "A seeded compressor's step (0 for the others).")
      .def_property_readonly("metrics", [](const device_feedback& f) { return metrics_dict(f.metrics()); })
      .def("copy_error", &device_feedback::copy_error, py::arg("dst"), py::kw_only(), py::arg("stream") = 0,
           "Copies the residual to dim floats at device address dst.")
      .def("assign_error", &device_feedback::assign_error, py::arg("src"), py::kw_only(), py::arg("stream") = 0,
           "Replaces the residual by dim finite floats at device address src.");
}

}  // namespace gradcomp::python
