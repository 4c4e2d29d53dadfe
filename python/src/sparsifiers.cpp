// gradcomp.identity, hard_threshold, top_k, random_k, unbiased_random_k.
#include "compressor_binding.hpp"

namespace gradcomp::python {

namespace {

template <bool Unbiased>
void bind_random_k(py::module_& m, const char* doc) {
  using C = basic_random_k<Unbiased>;
  bind_compressor<C>(m, doc)
      .def(py::init([](std::size_t k, std::uint64_t seed, std::uint64_t step) {
             return checked(C{.k = k, .seed = seed, .step = step});
           }),
           py::arg("k"), py::arg("seed") = 0, py::arg("step") = 0)
      .def_readwrite("k", &C::k)
      .def_readwrite("seed", &C::seed)
      .def_readwrite("step", &C::step)
      .def("__repr__", [](const C& c) {
        return repr_of(c, {{"k", std::to_string(c.k)}, {"seed", std::to_string(c.seed)}, {"step", std::to_string(c.step)}});
      });
}

}  // namespace

void bind_sparsifiers(py::module_& m) {
  bind_compressor<identity>(m, "Sends x as it is (dense float32): the uncompressed baseline.")
      .def(py::init([] { return identity{}; }))
      .def("__repr__", [](const identity& c) { return repr_of(c, {}); });

  bind_compressor<hard_threshold>(m,
                                  "Sends the entries with |x_i| >= lambda_ (Sahu et al. 2021). Absolute compressor: "
                                  "||x - C(x)||^2 <= d * lambda_^2. The parameter is lambda_ in Python (lambda is a "
                                  "keyword there).")
      .def(py::init([](double lambda) { return checked(hard_threshold{.lambda = lambda}); }), py::arg("lambda_"))
      .def_readwrite("lambda_", &hard_threshold::lambda)
      .def_static("matching_top_k", &hard_threshold::matching_top_k, py::arg("k"),
                  "The threshold 1 / (2 sqrt(k)), which sends about as much as Top-k with this k.")
      .def("__repr__", [](const hard_threshold& c) { return repr_of(c, {{"lambda_", float_repr(c.lambda)}}); });

  bind_compressor<top_k>(m, "Sends the k entries of largest magnitude (ties: lower index first). delta = k/d.")
      .def(py::init([](std::size_t k) { return checked(top_k{.k = k}); }), py::arg("k"))
      .def_readwrite("k", &top_k::k)
      .def("__repr__", [](const top_k& c) { return repr_of(c, {{"k", std::to_string(c.k)}}); });

  bind_random_k<false>(m,
                       "Sends k entries chosen by a (seed, step) stream shared by every worker (no indices on the "
                       "wire); advances step per call. delta = k/d in expectation.");
  bind_random_k<true>(m, "random_k scaled by d/k: unbiased with omega = d/k - 1. Shares the (seed, step) stream.");
}

}  // namespace gradcomp::python
