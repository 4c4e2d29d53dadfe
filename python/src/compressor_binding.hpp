#pragma once
// bind_compressor<C>: the Python class of a compressor (its C++ name and parameters, its
// categories and aggregation class), gradcomp.compress for it, and its error feedback.
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "cuda_bridge.hpp"

namespace gradcomp::python {

template <class C>
class feedback_impl final : public feedback_base {
 public:
  using payload = payload_t<C, float>;

  feedback_impl(C c, std::size_t dim, feedback_storage s) : ef_(std::move(c), dim, s) {}

  py::object compress(py::handle g, double scale, policy_choice p) override {
    const tensor_view v = borrow(g, "g", element::float32, access::read);
    {  // error_feedback checks the scale (after its rounding to float) and g
      py::gil_scoped_release unlocked;
      with_policy(p, [&](const auto& policy) { ef_.compress(policy, read_floats(v), static_cast<float>(scale)); });
    }
    return py::cast(payload(ef_.message()));
  }
  py::array_t<float> error() const override { return to_numpy(ef_.error()); }
  void assign_error(py::handle e) override {
    const tensor_view v = borrow(e, "e", element::float32, access::read);
    ef_.assign_error(read_floats(v));
  }
  void undo() override { ef_.undo(); }
  bool can_undo() const override { return ef_.can_undo(); }
  void reset() override { ef_.reset(); }
  void clear_error() override { ef_.clear_error(); }
  std::size_t dim() const override { return ef_.dim(); }
  feedback_storage storage() const override { return ef_.storage(); }
  const feedback_metrics& metrics() const override { return ef_.metrics(); }
  double average_density() const override { return ef_.average_density(); }
  py::object compressor() const override { return py::cast(ef_.base()); }
  py::object message() const override { return py::cast(payload(ef_.message())); }
  std::string compressor_name() const override { return std::string(C::name); }
  py::bytes save() const override {
    std::ostringstream out(std::ios::binary);
    ef_.save(out);
    return py::bytes(out.str());
  }
  void load(std::string_view bytes) override {
    std::istringstream in(std::string(bytes), std::ios::binary);
    ef_.load(in);
  }

 private:
  error_feedback<C, float> ef_;
};

/// Builds C and checks its parameters at once (C++ checks them at the first compress).
template <class C>
C checked(C c) {
  if constexpr (requires { c.validate(); }) c.validate();
  return c;
}

/// Binds C as gradcomp.<C::name> with what every compressor has; the caller adds its
/// constructor, its parameters and __repr__.
template <class C>
py::class_<C> bind_compressor(py::module_& m, const char* doc) {
  const std::string name(C::name);
  py::class_<C> cls(m, name.c_str(), doc);
  cls.def_property_readonly_static("name", [name](py::object) { return name; });
  cls.def_property_readonly_static("aggregation", [](py::object) {
    return aggregation_of_v<C> == aggregation_class::allreduce ? "allreduce" : "gather";
  });
  cls.def_property_readonly_static("payload_type", [](py::object) {
    return py::type::of<payload_t<C, float>>();
  });
  cls.def_property_readonly_static("is_absolute", [](py::object) { return absolute_compressor<C, float>; });
  cls.def_property_readonly_static("is_contractive", [](py::object) { return contractive_compressor<C, float>; });
  cls.def_property_readonly_static("is_unbiased", [](py::object) { return unbiased_compressor<C, float>; });
  cls.def_property_readonly_static("categories", [](py::object) {
    py::list out;
    if constexpr (absolute_compressor<C, float>) out.append("absolute");
    if constexpr (contractive_compressor<C, float>) out.append("contractive");
    if constexpr (unbiased_compressor<C, float>) out.append("unbiased");
    return py::tuple(out);
  });
  if constexpr (absolute_compressor<C, float>)
    cls.def("absolute_bound", [](const C& c, std::size_t d) { return c.absolute_bound(d); }, py::arg("d"),
            "B(d): ||x - decode(C(x))||^2 <= B(d) for every x of dimension d.");
  if constexpr (contractive_compressor<C, float>)
    cls.def("delta", [](const C& c, std::size_t d) { return c.delta(d); }, py::arg("d"),
            "delta(d): E||x - decode(C(x))||^2 <= (1 - delta) ||x||^2.");
  if constexpr (unbiased_compressor<C, float>)
    cls.def("omega", [](const C& c, std::size_t d) { return c.omega(d); }, py::arg("d"),
            "omega(d): E decode(C(x)) = x and E||decode(C(x)) - x||^2 <= omega ||x||^2.");
  cls.def("__copy__", [](const C& c) { return C(c); });
  cls.def("__deepcopy__", [](const C& c, py::dict) { return C(c); }, py::arg("memo"));

  m.def(
      "compress",
      [](C& c, py::handle x, std::string_view policy) {
        const tensor_view v = borrow(x, "x", element::float32, access::read);
        payload_t<C, float> out;
        {
          py::gil_scoped_release unlocked;
          with_policy(parse_policy(policy), [&](const auto& p) { gradcomp::compress(p, c, read_floats(v), out); });
        }
        return out;
      },
      py::arg("compressor"), py::arg("x"), py::kw_only(), py::arg("policy") = "par",
      "The compressor's message for x (a float32 tensor or array, read without a copy). Seeded "
      "compressors advance their step.");

  feedback_factories()[reinterpret_cast<PyObject*>(py::type::of<C>().ptr())] =
      [](py::handle c, std::size_t dim, feedback_storage s) -> std::unique_ptr<feedback_base> {
    return std::make_unique<feedback_impl<C>>(c.cast<C>(), dim, s);
  };
  if constexpr (cuda_bridge::supported_v<C>)
    cuda_feedback_factories()[reinterpret_cast<PyObject*>(py::type::of<C>().ptr())] =
        [](py::handle c, std::size_t dim) { return cuda_bridge::make_device_feedback(c.cast<C>(), dim); };
  return cls;
}

/// "top_k(k=1000)": the class name and its parameters as keyword arguments.
template <class C>
std::string repr_of(const C&, std::initializer_list<std::pair<const char*, std::string>> fields) {
  std::string s = std::string(C::name) + "(";
  bool first = true;
  for (const auto& [k, v] : fields) {
    s += (first ? "" : ", ") + std::string(k) + "=" + v;
    first = false;
  }
  return s + ")";
}

std::string float_repr(double v);
std::string bool_repr(bool v);

}  // namespace gradcomp::python
