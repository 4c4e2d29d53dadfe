// The C++ side of the Python binding tests (tests/python/test_bindings.py): runs a compressor
// and its error feedback on exec::seq, straight from the headers, and writes what it sent.
//
//   gradcomp_python_reference <spec> <inputs.f32> <dim> <steps> <out-dir>
//
// spec: "top_k:k=10", "hard_threshold:lambda=0.5", "random_k:k=5,seed=3", "qsgd:s=4,seed=7",
// "grid_rounding:spacing=0.1,stochastic=1,seed=2", "blockwise_sign:block_size=16", "onebit",
// "onebit:block_size=16",
// "scaled_sign", "identity", "unbiased_random_k:k=5,seed=3". inputs: steps * dim float32
// (native byte order). Writes compress.bin (the encoded message of compress(c, x_0)),
// ef_<t>.bin (the encoded error-feedback message of step t, scale 0.5), residual.f32 (the
// residual after the last step) and checkpoint.bin (error_feedback::save).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gradcomp/gradcomp.hpp>

namespace gc = gradcomp;

namespace {

std::map<std::string, std::string> parse_params(const std::string& s) {
  std::map<std::string, std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (const auto eq = item.find('='); eq != std::string::npos) out[item.substr(0, eq)] = item.substr(eq + 1);
  return out;
}

void write_file(const std::string& path, std::span<const std::byte> bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

template <class C>
int run(C c, const std::vector<float>& inputs, std::size_t dim, std::size_t steps, const std::string& dir) {
  const std::span<const float> x0(inputs.data(), dim);
  C first = c;
  gc::payload_t<C, float> m;
  gc::compress(gc::exec::seq, first, x0, m);
  write_file(dir + "/compress.bin", gc::encode(m));

  gc::error_feedback<C, float> ef(c, dim);
  for (std::size_t t = 0; t < steps; ++t) {
    const auto& msg = ef.compress(gc::exec::seq, std::span<const float>(inputs.data() + t * dim, dim), 0.5f);
    write_file(dir + "/ef_" + std::to_string(t) + ".bin", gc::encode(msg));
  }
  write_file(dir + "/residual.f32", std::as_bytes(ef.error()));
  std::ostringstream cp(std::ios::binary);
  ef.save(cp);
  const std::string s = cp.str();
  write_file(dir + "/checkpoint.bin", std::as_bytes(std::span<const char>(s.data(), s.size())));
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s <spec> <inputs.f32> <dim> <steps> <out-dir>\n", argv[0]);
    return 2;
  }
  const std::string spec = argv[1];
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  auto p = parse_params(colon == std::string::npos ? "" : spec.substr(colon + 1));
  const auto u64 = [&](const char* k, std::uint64_t def) { return p.count(k) ? std::stoull(p[k]) : def; };
  const auto f64 = [&](const char* k, double def) { return p.count(k) ? std::stod(p[k]) : def; };

  const std::size_t dim = std::stoull(argv[3]), steps = std::stoull(argv[4]);
  std::ifstream in(argv[2], std::ios::binary);
  std::vector<float> inputs(dim * steps);
  in.read(reinterpret_cast<char*>(inputs.data()), static_cast<std::streamsize>(inputs.size() * sizeof(float)));
  if (!in) throw std::runtime_error(std::string("cannot read ") + std::to_string(dim * steps) + " floats from " + argv[2]);
  const std::string dir = argv[5];

  if (name == "identity") return run(gc::identity{}, inputs, dim, steps, dir);
  if (name == "top_k") return run(gc::top_k{.k = u64("k", 1)}, inputs, dim, steps, dir);
  if (name == "hard_threshold") return run(gc::hard_threshold{.lambda = f64("lambda", 0)}, inputs, dim, steps, dir);
  if (name == "random_k")
    return run(gc::random_k{.k = u64("k", 1), .seed = u64("seed", 0)}, inputs, dim, steps, dir);
  if (name == "unbiased_random_k")
    return run(gc::unbiased_random_k{.k = u64("k", 1), .seed = u64("seed", 0)}, inputs, dim, steps, dir);
  if (name == "scaled_sign") return run(gc::scaled_sign{}, inputs, dim, steps, dir);
  if (name == "blockwise_sign") return run(gc::blockwise_sign{.block_size = u64("block_size", 256)}, inputs, dim, steps, dir);
  if (name == "onebit") return run(gc::onebit{.block_size = u64("block_size", gc::onebit::whole)}, inputs, dim, steps, dir);
  if (name == "qsgd")
    return run(gc::qsgd{.s = static_cast<std::uint32_t>(u64("s", 1)), .seed = u64("seed", 0)}, inputs, dim, steps, dir);
  if (name == "terngrad") return run(gc::terngrad{.seed = u64("seed", 0)}, inputs, dim, steps, dir);
  if (name == "dithering") {
    const std::string partition = p.count("partition") ? p["partition"] : "linear", norm = p.count("norm") ? p["norm"] : "max";
    if ((partition != "linear" && partition != "natural") || (norm != "max" && norm != "l2"))
      throw std::runtime_error("dithering: partition is linear or natural, norm is max or l2");
    return run(gc::dithering{.s = static_cast<std::uint32_t>(u64("s", 1)),
                             .partition = partition == "natural" ? gc::dithering::natural : gc::dithering::linear,
                             .norm = norm == "l2" ? gc::dithering::l2 : gc::dithering::max,
                             .seed = u64("seed", 0)},
               inputs, dim, steps, dir);
  }
  if (name == "sign") return run(gc::sign{.scale = f64("scale", 1.0)}, inputs, dim, steps, dir);
  if (name == "float16_cast") return run(gc::float16_cast{}, inputs, dim, steps, dir);
  if (name == "bfloat16_cast") return run(gc::bfloat16_cast{}, inputs, dim, steps, dir);
  if (name == "natural_compression") return run(gc::natural_compression{.seed = u64("seed", 0)}, inputs, dim, steps, dir);
  if (name == "maxmin_quantizer")
    return run(gc::maxmin_quantizer{.bits = static_cast<std::uint32_t>(u64("bits", 8)),
                                    .bucket_size = u64("bucket_size", 1024), .seed = u64("seed", 0)},
               inputs, dim, steps, dir);
  if (name == "grid_rounding")
    return run(gc::grid_rounding{.spacing = f64("spacing", 1), .stochastic = u64("stochastic", 0) != 0,
                                 .seed = u64("seed", 0)},
               inputs, dim, steps, dir);
  std::fprintf(stderr, "unknown compressor %s\n", name.c_str());
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gradcomp_python_reference: %s\n", e.what());
  return 1;
}
