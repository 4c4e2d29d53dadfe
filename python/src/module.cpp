// gradcomp._core: the compiled half of the gradcomp Python package (python/gradcomp).
#include <pybind11/stl.h>

#include <cstdio>

#include "bindings.hpp"

namespace gradcomp::python {

policy_choice parse_policy(std::string_view name) {
  if (name == "par") return policy_choice::par;
  if (name == "seq") return policy_choice::seq;
  throw py::value_error("gradcomp: policy must be 'par' (exec::par) or 'seq' (exec::seq), got '" + std::string(name) +
                        "'");
}

py::dict metrics_dict(const feedback_metrics& m) {
  py::dict d;
  d["steps"] = m.steps;
  d["elements_sent"] = m.elements_sent;
  d["wire_bytes"] = m.wire_bytes;
  d["total_error"] = m.total_error;
  return d;
}

std::string float_repr(double v) { return py::str(py::float_(v)).cast<std::string>(); }
std::string bool_repr(bool v) { return v ? "True" : "False"; }

std::unordered_map<PyObject*, feedback_factory>& feedback_factories() {
  static std::unordered_map<PyObject*, feedback_factory> factories;
  return factories;
}

namespace {

feedback_storage parse_storage(std::string_view s) {
  if (s == "double_buffered") return feedback_storage::double_buffered;
  if (s == "in_place") return feedback_storage::in_place;
  throw py::value_error("gradcomp: storage must be 'double_buffered' or 'in_place', got '" + std::string(s) + "'");
}

constexpr const char* state_format = "gradcomp.error_feedback";

}  // namespace

void bind_feedback(py::module_& m) {
  py::class_<feedback_base>(m, "ErrorFeedback",
                            "Error feedback over any compressor (docs/error-feedback.md): each compress(g, scale) "
                            "computes p = e + scale * g, sends m = C(p) and keeps e = p - decode(m). A step that "
                            "fails (wrong size, non-finite g) raises and changes nothing.")
      .def(py::init([](py::handle compressor, std::size_t dim, std::string_view storage) {
             const auto& factories = feedback_factories();
             const auto it = factories.find(reinterpret_cast<PyObject*>(Py_TYPE(compressor.ptr())));
             if (it == factories.end())
               throw py::type_error("gradcomp.ErrorFeedback: compressor must be a gradcomp compressor (top_k, "
                                    "hard_threshold, ...), got " +
                                    std::string(py::str(py::type::handle_of(compressor).attr("__name__"))));
             return it->second(compressor, dim, parse_storage(storage));
           }),
           py::arg("compressor"), py::arg("dim"), py::kw_only(), py::arg("storage") = "double_buffered")
      .def(
          "compress",
          [](feedback_base& f, py::handle g, double scale, std::string_view policy) {
            return f.compress(g, scale, parse_policy(policy));
          },
          py::arg("g"), py::arg("scale") = 1.0, py::kw_only(), py::arg("policy") = "par",
          "One step: p = e + scale * g; returns m = C(p) and keeps e = p - decode(m). g: float32, dim elements.")
      .def_property_readonly("error", &feedback_base::error, "The residual e (a float32 copy).")
      .def("assign_error", &feedback_base::assign_error, py::arg("e"),
           "Replaces the residual by e (dim finite float32 values); metrics are kept.")
      .def("undo", &feedback_base::undo, "Takes back the last compress (double_buffered storage only).")
      .def_property_readonly("can_undo", &feedback_base::can_undo)
      .def("reset", &feedback_base::reset, "Zeroes the residual and the metrics.")
      .def("clear_error", &feedback_base::clear_error, "Zeroes the residual, keeps the metrics.")
      .def_property_readonly("dim", &feedback_base::dim)
      .def_property_readonly("storage", [](const feedback_base& f) {
        return f.storage() == feedback_storage::in_place ? "in_place" : "double_buffered";
      })
      .def_property_readonly("compressor", &feedback_base::compressor, "A copy of the wrapped compressor.")
      .def_property_readonly("message", &feedback_base::message, "The last message sent.")
      .def_property_readonly(
          "metrics",
          [](const feedback_base& f) { return metrics_dict(f.metrics()); },
          "steps, elements_sent, wire_bytes (sums over steps) and total_error (sum over steps of ||e||^2).")
      .def_property_readonly("average_density", &feedback_base::average_density)
      .def(
          "state_dict",
          [](const feedback_base& f) {
            py::dict d;
            d["format"] = state_format;
            d["compressor"] = f.compressor_name();
            d["dim"] = f.dim();
            d["checkpoint"] = f.save();
            return d;
          },
          "The residual, the metrics and a seeded compressor's step, as a dict of plain values (torch.save "
          "and pickle take it). The checkpoint bytes are the C++ error_feedback::save format.")
      .def(
          "load_state_dict",
          [](feedback_base& f, const py::dict& d) {
            for (const char* key : {"format", "compressor", "dim", "checkpoint"})
              if (!d.contains(key))
                throw py::value_error(std::string("gradcomp.ErrorFeedback.load_state_dict: the state has no '") + key +
                                      "' entry");
            if (py::str(d["format"]).cast<std::string>() != state_format)
              throw py::value_error("gradcomp.ErrorFeedback.load_state_dict: not an ErrorFeedback state (format '" +
                                    py::str(d["format"]).cast<std::string>() + "')");
            const auto name = py::str(d["compressor"]).cast<std::string>();
            if (name != f.compressor_name())
              throw py::value_error("gradcomp.ErrorFeedback.load_state_dict: the state is for " + name +
                                    ", this ErrorFeedback wraps " + f.compressor_name());
            f.load(d["checkpoint"].cast<std::string_view>());
          },
          py::arg("state"),
          "Restores state_dict(). Rejects another compressor, dimension or format, and corrupted bytes; "
          "nothing changes then.")
      .def("__repr__", [](const feedback_base& f) {
        return "ErrorFeedback(" + py::repr(f.compressor()).cast<std::string>() + ", dim=" + std::to_string(f.dim()) +
               ")";
      });
}

}  // namespace gradcomp::python

PYBIND11_MODULE(_core, m) {
  namespace gp = gradcomp::python;
  namespace py = pybind11;
  m.doc() = "gradcomp's C++ compressors, payloads and error feedback (exec::par, releasing the GIL).";
  py::register_exception<gradcomp::error>(m, "Error", PyExc_ValueError);
  m.attr("__version__") = std::to_string(GRADCOMP_VERSION_MAJOR) + "." + std::to_string(GRADCOMP_VERSION_MINOR) +
                          "." + std::to_string(GRADCOMP_VERSION_PATCH);
  m.def("simd_target", [] { return std::string(gradcomp::cpu::simd_target()); },
        "The instruction set exec::par's kernels run with on this CPU.");
  gp::bind_payloads(m);
  gp::bind_sparsifiers(m);
  gp::bind_quantizers(m);
  gp::bind_feedback(m);
  gp::bind_cuda(m);
}
