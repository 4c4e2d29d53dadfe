// gradcomp.scaled_sign, blockwise_sign, qsgd, grid_rounding.
#include "compressor_binding.hpp"

namespace gradcomp::python {

void bind_quantizers(py::module_& m) {
  bind_compressor<scaled_sign>(m, "Sends sign(x) and one scale ||x||_1 / d (Karimireddy et al. 2019). delta = 1/d.")
      .def(py::init([] { return scaled_sign{}; }))
      .def("__repr__", [](const scaled_sign& c) { return repr_of(c, {}); });

  bind_compressor<blockwise_sign>(m, "scaled_sign per block of block_size elements (Zheng et al. 2019). delta = 1/B.")
      .def(py::init([](std::size_t b) { return checked(blockwise_sign{.block_size = b}); }), py::arg("block_size") = 256)
      .def_readwrite("block_size", &blockwise_sign::block_size)
      .def("__repr__",
           [](const blockwise_sign& c) { return repr_of(c, {{"block_size", std::to_string(c.block_size)}}); });

  bind_compressor<qsgd>(m,
                        "Stochastic quantization to s levels of ||x||_2 (Alistarh et al. 2017): unbiased, "
                        "omega = min(d/s^2, sqrt(d)/s). Seeded: advances step per call.")
      .def(py::init([](std::uint32_t s, std::uint64_t seed, std::uint64_t step) {
             return checked(qsgd{.s = s, .seed = seed, .step = step});
           }),
           py::arg("s"), py::arg("seed") = 0, py::arg("step") = 0)
      .def_readwrite("s", &qsgd::s)
      .def_readwrite("seed", &qsgd::seed)
      .def_readwrite("step", &qsgd::step)
      .def("__repr__", [](const qsgd& c) {
        return repr_of(c, {{"s", std::to_string(c.s)}, {"seed", std::to_string(c.seed)}, {"step", std::to_string(c.step)}});
      });

  bind_compressor<grid_rounding>(m,
                                 "Rounds to the grid spacing * Z, to nearest or stochastically: absolute, "
                                 "d q^2 / 4 (nearest) or d q^2 (stochastic).")
      .def(py::init([](double spacing, bool stochastic, std::uint64_t seed, std::uint64_t step) {
             return checked(grid_rounding{.spacing = spacing, .stochastic = stochastic, .seed = seed, .step = step});
           }),
           py::arg("spacing") = 1.0, py::arg("stochastic") = false, py::arg("seed") = 0, py::arg("step") = 0)
      .def_readwrite("spacing", &grid_rounding::spacing)
      .def_readwrite("stochastic", &grid_rounding::stochastic)
      .def_readwrite("seed", &grid_rounding::seed)
      .def_readwrite("step", &grid_rounding::step)
      .def("__repr__", [](const grid_rounding& c) {
        return repr_of(c, {{"spacing", float_repr(c.spacing)}, {"stochastic", bool_repr(c.stochastic)},
                           {"seed", std::to_string(c.seed)}, {"step", std::to_string(c.step)}});
      });
}

}  // namespace gradcomp::python
