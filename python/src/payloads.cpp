// The payload classes: what crosses the wire. Every one has dim, sent_elements, wire_bytes,
// encode / encode_into / decode (the validated wire format of docs/payloads.md),
// decompress_add and to_dense; the allreduce-class ones (dense_vector, seeded_sparse_vector)
// also say how they sum in compressed form.
#include <pybind11/operators.h>

#include <cstring>

#include "bindings.hpp"

namespace gradcomp::python {

namespace {

template <class P>
std::size_t dim_of(const P& p) {
  if constexpr (requires { p.dim; })
    return p.dim;
  else
    return p.values.size();
}

template <class P>
py::bytes encode_bytes(const P& p) {
  const std::vector<std::byte> v = gradcomp::encode(p);
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

template <class P>
P decode_bytes(py::handle data) {
  const tensor_view v = borrow(data, "data", element::uint8, access::read);
  P p;
  gradcomp::decode_into(std::as_bytes(v.as<const std::uint8_t>()), p);
  return p;
}

template <class P>
py::class_<P> bind_payload(py::module_& m, const char* name, const char* doc) {
  py::class_<P> cls(m, name, doc);
  cls.def(py::init<>())
      .def_property_readonly("dim", [](const P& p) { return dim_of(p); })
      .def_property_readonly("sent_elements", [](const P& p) { return gradcomp::sent_elements(p); },
                             "The elements this message carries (k for Top-k, d for dense and sign messages).")
      .def_property_readonly("wire_bytes", [](const P& p) { return gradcomp::wire_bytes(p); },
                             "The exact length of encode().")
      .def("encode", &encode_bytes<P>, "The wire format (docs/payloads.md), as bytes.")
      .def(
          "encode_into",
          [](const P& p, py::handle out) {
            const tensor_view v = borrow(out, "out", element::uint8, access::write);
            const std::size_t n = gradcomp::wire_bytes(p);
            if (v.size < n)
              throw py::value_error("gradcomp: out has " + std::to_string(v.size) + " bytes, the message needs " +
                                    std::to_string(n));
            return gradcomp::encode(p, std::as_writable_bytes(v.as<std::uint8_t>()));
          },
          py::arg("out"),
          "Writes the wire format to the start of out (a writable uint8 tensor or buffer of at least wire_bytes); "
          "returns the bytes written.")
      .def_static("decode", &decode_bytes<P>, py::arg("data"),
                  "The message encoded in data (bytes, or a uint8 tensor or array); raises gradcomp.Error if it is "
                  "malformed.")
      .def(
          "decompress_add",
          [](const P& p, py::handle out, double alpha, std::string_view policy) {
            const tensor_view v = borrow(out, "out", element::float32, access::write);
            if (v.size != dim_of(p))
              throw py::value_error("gradcomp: out has " + std::to_string(v.size) + " elements, the message has dim " +
                                    std::to_string(dim_of(p)));
            const policy_choice pc = parse_policy(policy);
            py::gil_scoped_release unlocked;
            with_policy(pc, [&](const auto& pol) {
              gradcomp::decompress_add(pol, p, write_floats(v), static_cast<float>(alpha));
            });
          },
          py::arg("out"), py::arg("alpha") = 1.0, py::kw_only(), py::arg("policy") = "par",
          "out += alpha * decode(self), in place (out: a float32 tensor or array of dim elements).")
      .def(
          "to_dense",
          [](const P& p) {
            py::array_t<float> a(static_cast<py::ssize_t>(dim_of(p)));
            std::fill_n(a.mutable_data(), a.size(), 0.0f);
            gradcomp::decompress_add(exec::seq, p, std::span<float>(a.mutable_data(), static_cast<std::size_t>(a.size())));
            return a;
          },
          "decode(self) as a new float32 NumPy array.")
      .def(py::self == py::self)
      .def(py::pickle([](const P& p) { return encode_bytes(p); },
                      [](const py::bytes& b) { return decode_bytes<P>(b); }))
      .def("__repr__", [name](const P& p) {
        return std::string(name) + "(dim=" + std::to_string(dim_of(p)) +
               ", sent_elements=" + std::to_string(gradcomp::sent_elements(p)) +
               ", wire_bytes=" + std::to_string(gradcomp::wire_bytes(p)) + ")";
      });
  if constexpr (summable_payload<P>) {
    // How allreduce-class messages add up: equal keys on every worker, summed values.
    cls.def_property_readonly(
           "summation_key",
           [](const P& p) {
             const auto key = summation<P>::key(p);
             py::tuple t(key.size());
             for (std::size_t i = 0; i < key.size(); ++i) t[i] = key[i];
             return t;
           },
           "The words that must agree across workers for their messages to be summed.")
        .def(
            "with_values",
            [](const P& p, py::handle values) {
              const tensor_view v = borrow(values, "values", element::float32, access::read);
              const auto mine = summation<P>::values(p);
              if (v.size != mine.size())
                throw py::value_error("gradcomp: values has " + std::to_string(v.size) + " elements, the message has " +
                                      std::to_string(mine.size()));
              P out;
              summation<P>::with_values(p, read_floats(v), out);
              return out;
            },
            py::arg("values"),
            "This message with its summed values replaced (for an all-reduce of the values of every worker's "
            "message).");
  }
  return cls;
}

}  // namespace

void bind_payloads(py::module_& m) {
  bind_payload<dense_vector<float>>(m, "dense_vector", "Every value (identity).")
      .def_property_readonly("values", [](const dense_vector<float>& p) { return to_numpy(std::span<const float>(p.values)); });

  bind_payload<sparse_vector<float>>(m, "sparse_vector", "Ascending indices and their values (top_k, hard_threshold).")
      .def(py::init([](std::size_t dim, py::handle indices, py::handle values) {
             sparse_vector<float> p;
             p.reset(dim);
             const auto idx = py::array_t<std::uint32_t, py::array::c_style | py::array::forcecast>::ensure(indices);
             if (!idx) throw py::type_error("gradcomp: indices must be convertible to an array of uint32");
             const tensor_view v = borrow(values, "values", element::float32, access::read);
             p.indices.assign(idx.data(), idx.data() + idx.size());
             p.values.assign(read_floats(v).begin(), read_floats(v).end());
             p.validate("sparse_vector");
             return p;
           }),
           py::arg("dim"), py::arg("indices"), py::arg("values"))
      .def_property_readonly("nnz", &sparse_vector<float>::nnz)
      .def_property_readonly("indices",
                             [](const sparse_vector<float>& p) { return to_numpy(std::span<const std::uint32_t>(p.indices)); })
      .def_property_readonly("values", [](const sparse_vector<float>& p) { return to_numpy(std::span<const float>(p.values)); });

  bind_payload<seeded_sparse_vector<float>>(m, "seeded_sparse_vector",
                                            "Values at indices drawn from (seed, step); no indices on the wire "
                                            "(random_k, unbiased_random_k).")
      .def_readonly("seed", &seeded_sparse_vector<float>::seed)
      .def_readonly("step", &seeded_sparse_vector<float>::step)
      .def_property_readonly("indices", [](const seeded_sparse_vector<float>& p) {
        return to_numpy(std::span<const std::uint32_t>(p.indices));
      })
      .def_property_readonly("values",
                             [](const seeded_sparse_vector<float>& p) { return to_numpy(std::span<const float>(p.values)); });

  bind_payload<sign_vector<float>>(m, "sign_vector", "One sign bit per element and a scale per block (scaled_sign, "
                                                     "blockwise_sign).")
      .def_readonly("block_size", &sign_vector<float>::block_size)
      .def_property_readonly("scales", [](const sign_vector<float>& p) { return to_numpy(std::span<const float>(p.scales)); });

  bind_payload<two_level_vector<float>>(m, "two_level_vector",
                                        "One bit per element and per block two values: the low a set bit decodes to "
                                        "(the mean of the block's negatives) and the high (the mean of the rest) "
                                        "(onebit).")
      .def_readonly("block_size", &two_level_vector<float>::block_size)
      .def_property_readonly("lows",
                             [](const two_level_vector<float>& p) { return to_numpy(std::span<const float>(p.lows)); })
      .def_property_readonly("highs",
                             [](const two_level_vector<float>& p) { return to_numpy(std::span<const float>(p.highs)); });

  bind_payload<float_code_vector<float>>(m, "float_code_vector",
                                         "Each element a small float format's bits times 2^-scale_exponent "
                                         "(float16_cast, bfloat16_cast, natural_compression).")
      .def_property_readonly("format",
                             [](const float_code_vector<float>& p) {
                               switch (p.format) {
                                 case code_format::float16: return "float16";
                                 case code_format::bfloat16: return "bfloat16";
                                 default: return "power_of_two";
                               }
                             })
      .def_readonly("scale_exponent", &float_code_vector<float>::scale_exponent)
      .def_property_readonly("codes", [](const float_code_vector<float>& p) {
        return to_numpy(std::span<const std::uint16_t>(p.codes));
      });

  bind_payload<bucket_quantized_vector<float>>(m, "bucket_quantized_vector",
                                               "Per bucket a minimum and a unit, and a small unsigned level per "
                                               "element (maxmin_quantizer).")
      .def_readonly("bucket_size", &bucket_quantized_vector<float>::bucket_size)
      .def_readonly("bits", &bucket_quantized_vector<float>::bits)
      .def_property_readonly("mins",
                             [](const bucket_quantized_vector<float>& p) { return to_numpy(std::span<const float>(p.mins)); })
      .def_property_readonly("units",
                             [](const bucket_quantized_vector<float>& p) { return to_numpy(std::span<const float>(p.units)); })
      .def_property_readonly("levels", [](const bucket_quantized_vector<float>& p) {
        return to_numpy(std::span<const std::uint8_t>(p.levels));
      });

  bind_payload<quantized_vector<float>>(m, "quantized_vector",
                                        "Integer levels times one scale (qsgd, terngrad, grid_rounding, dithering).")
      .def_readonly("scale", &quantized_vector<float>::scale)
      .def_readonly("level_bits", &quantized_vector<float>::level_bits)
      .def_property_readonly("coding",
                             [](const quantized_vector<float>& p) {
                               return std::string(p.coding == level_coding::linear ? "linear" : "power_of_two");
                             },
                             "How levels are written on the wire: 'linear' (zigzag) or 'power_of_two' (exponents: "
                             "natural dithering).")
      .def_property_readonly("levels", [](const quantized_vector<float>& p) {
        return to_numpy(std::span<const std::int32_t>(p.levels));
      });
}

}  // namespace gradcomp::python
