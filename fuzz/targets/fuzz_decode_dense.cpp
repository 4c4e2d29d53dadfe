// Fuzz target: gc::decode / gc::decode_into of dense_vector<T> for float and double
// (fuzz_support.hpp lists the invariants checked).
#include <cstddef>
#include <cstdint>
#include <gradcomp/payload/dense.hpp>
#include <span>
#include <vector>

#include "fuzz_support.hpp"

namespace {

using namespace gradcomp_fuzz;

template <class T>
void run(std::span<const std::byte> in) {
  using P = gc::dense_vector<T>;
  P prior;
  prior.values = {T(1), T(-0.5)};
  check_decoder(
      in, prior, [](std::span<const std::byte> b) { return bytes_t(b.begin(), b.end()); },
      [](std::size_t n) { return n; }, [](const P& p) { return p.dim(); },
      [](const P& p, std::vector<T>& dense) {
        for (std::size_t i = 0; i < p.values.size(); ++i) dense[i] += T(1) * p.values[i];
      },
      [](const P&) {});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  run<float>(in);
  run<double>(in);
  return 0;
}
