// gradcomp.scaled_sign, blockwise_sign, onebit, sign, qsgd, terngrad, dithering, maxmin_quantizer,
// float16_cast, bfloat16_cast, natural_compression, grid_rounding.
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

  bind_compressor<onebit>(m,
                          "1-bit SGD (Seide et al. 2014, GRACE's OneBit): per block of block_size elements (default "
                          "onebit.whole, one block), one bit per element and the means of its negatives and of the "
                          "rest. delta = 1/min(B, d); never a larger error than blockwise_sign on the same blocks.")
      .def(py::init([](std::size_t b) { return checked(onebit{.block_size = b}); }),
           py::arg("block_size") = onebit::whole)
      .def_readwrite("block_size", &onebit::block_size)
      .def_property_readonly_static("whole", [](py::object) { return onebit::whole; },
                                    "The default block_size: one block of the whole vector.")
      .def("__repr__", [](const onebit& c) {
        if (c.block_size == onebit::whole) return repr_of(c, {});
        return repr_of(c, {{"block_size", std::to_string(c.block_size)}});
      });

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

  bind_compressor<sign>(m,
                        "Sends sign(x) times a fixed scale, 1 by default (signSGD, Bernstein et al. 2018): no bound of "
                        "any kind. Signum's step size goes in scale where the scheme puts lr inside the compressed "
                        "quantity.")
      .def(py::init([](double scale) {
             sign c{.scale = scale};
             (void)c.scale_as<float>();  // checked at once, as C++ checks it at the first compress
             return c;
           }),
           py::arg("scale") = 1.0)
      .def_readwrite("scale", &sign::scale)
      .def("__repr__", [](const sign& c) {
        return c.scale == 1.0 ? repr_of(c, {}) : repr_of(c, {{"scale", float_repr(c.scale)}});
      });

  bind_compressor<terngrad>(m,
                            "Stochastic ternary levels {-1, 0, 1} times max|x| (TernGrad, Wen et al. 2017): "
                            "unbiased, omega = sqrt(d) - 1. Seeded: advances step per call.")
      .def(py::init([](std::uint64_t seed, std::uint64_t step) { return terngrad{.seed = seed, .step = step}; }),
           py::arg("seed") = 0, py::arg("step") = 0)
      .def_readwrite("seed", &terngrad::seed)
      .def_readwrite("step", &terngrad::step)
      .def("__repr__", [](const terngrad& c) {
        return repr_of(c, {{"seed", std::to_string(c.seed)}, {"step", std::to_string(c.step)}});
      });

  using partition_kind = dithering::partition_kind;
  using norm_kind = dithering::norm_kind;
  const auto partition_of = [](const std::string& name) {
    if (name == "linear") return dithering::linear;
    if (name == "natural") return dithering::natural;
    detail::fail("dithering", "partition must be \"linear\" or \"natural\" (got \"", name, "\")");
  };
  const auto norm_of = [](const std::string& name) {
    if (name == "max") return dithering::max;
    if (name == "l2") return dithering::l2;
    detail::fail("dithering", "norm must be \"max\" or \"l2\" (got \"", name, "\")");
  };
  const auto partition_name = [](partition_kind p) { return p == dithering::linear ? "linear" : "natural"; };
  const auto norm_name = [](norm_kind n) { return n == dithering::max ? "max" : "l2"; };
  bind_compressor<dithering>(m,
                             "Random dithering to s levels of max|x| or ||x||_2 (BytePS), with a linear partition "
                             "(QSGD's levels; omega = min(d/s^2, sqrt(d)/s)) or the natural one {0, 2^(1-s), ..., 1/2, "
                             "1} (Horvath et al. 2019; omega = 1/8 + a min(1, a), a = sqrt(d) 2^(1-s)). Unbiased. "
                             "Seeded: advances step per call.")
      .def(py::init([=](std::uint32_t s, const std::string& partition, const std::string& norm, std::uint64_t seed,
                        std::uint64_t step) {
             return checked(dithering{
                 .s = s, .partition = partition_of(partition), .norm = norm_of(norm), .seed = seed, .step = step});
           }),
           py::arg("s") = 1, py::arg("partition") = "linear", py::arg("norm") = "max", py::arg("seed") = 0,
           py::arg("step") = 0)
      .def_readwrite("s", &dithering::s)
      .def_property(
          "partition", [=](const dithering& c) { return std::string(partition_name(c.partition)); },
          [=](dithering& c, const std::string& name) { c.partition = partition_of(name); })
      .def_property(
          "norm", [=](const dithering& c) { return std::string(norm_name(c.norm)); },
          [=](dithering& c, const std::string& name) { c.norm = norm_of(name); })
      .def_readwrite("seed", &dithering::seed)
      .def_readwrite("step", &dithering::step)
      .def("__repr__", [=](const dithering& c) {
        return repr_of(c, {{"s", std::to_string(c.s)},
                           {"partition", std::string("'") + partition_name(c.partition) + "'"},
                           {"norm", std::string("'") + norm_name(c.norm) + "'"},
                           {"seed", std::to_string(c.seed)},
                           {"step", std::to_string(c.step)}});
      });

  bind_compressor<maxmin_quantizer>(m,
                                    "Max-min stochastic quantization per bucket of bucket_size elements to 2^bits "
                                    "levels (as in CGX): unbiased, omega = min(B, d) / (2 (2^bits - 1)^2). Seeded.")
      .def(py::init([](std::uint32_t bits, std::size_t bucket_size, std::uint64_t seed, std::uint64_t step) {
             return checked(maxmin_quantizer{.bits = bits, .bucket_size = bucket_size, .seed = seed, .step = step});
           }),
           py::arg("bits") = 8, py::arg("bucket_size") = 1024, py::arg("seed") = 0, py::arg("step") = 0)
      .def_readwrite("bits", &maxmin_quantizer::bits)
      .def_readwrite("bucket_size", &maxmin_quantizer::bucket_size)
      .def_readwrite("seed", &maxmin_quantizer::seed)
      .def_readwrite("step", &maxmin_quantizer::step)
      .def("__repr__", [](const maxmin_quantizer& c) {
        return repr_of(c, {{"bits", std::to_string(c.bits)}, {"bucket_size", std::to_string(c.bucket_size)},
                           {"seed", std::to_string(c.seed)}, {"step", std::to_string(c.step)}});
      });

  bind_compressor<float16_cast>(m,
                                "Rounds to IEEE float16 after a power-of-two pre-scale (values above 65504 do not "
                                "overflow): delta = (1 - u^2)/d, and |C(x)_i - x_i| <= u |x_i| in the normal range, "
                                "u = 2^-11.")
      .def(py::init([](bool pre_scale) { return float16_cast{.pre_scale = pre_scale}; }), py::arg("pre_scale") = true)
      .def_readwrite("pre_scale", &float16_cast::pre_scale)
      .def("__repr__", [](const float16_cast& c) { return repr_of(c, {{"pre_scale", bool_repr(c.pre_scale)}}); });

  bind_compressor<bfloat16_cast>(m,
                                 "Rounds to bfloat16 after a power-of-two pre-scale: delta = (1 - u^2)/d, and "
                                 "|C(x)_i - x_i| <= u |x_i| in the normal range, u = 2^-8.")
      .def(py::init([](bool pre_scale) { return bfloat16_cast{.pre_scale = pre_scale}; }), py::arg("pre_scale") = true)
      .def_readwrite("pre_scale", &bfloat16_cast::pre_scale)
      .def("__repr__", [](const bfloat16_cast& c) { return repr_of(c, {{"pre_scale", bool_repr(c.pre_scale)}}); });

  bind_compressor<natural_compression>(m,
                                       "Unbiased stochastic rounding to powers of two (Horvath et al. 2019): "
                                       "omega = 1/8; sends sign and exponent. Seeded.")
      .def(py::init([](std::uint64_t seed, std::uint64_t step) { return natural_compression{.seed = seed, .step = step}; }),
           py::arg("seed") = 0, py::arg("step") = 0)
      .def_readwrite("seed", &natural_compression::seed)
      .def_readwrite("step", &natural_compression::step)
      .def("__repr__", [](const natural_compression& c) {
        return repr_of(c, {{"seed", std::to_string(c.seed)}, {"step", std::to_string(c.step)}});
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
