// Fuzz target: gc::decode / gc::decode_into of sparse_vector<T, Index> for float and double,
// with 16-, 32- and 64-bit index types (fuzz_support.hpp lists the invariants checked).
#include <cstddef>
#include <cstdint>
#include <gradcomp/sparse.hpp>
#include <span>
#include <vector>

#include "fuzz_support.hpp"

namespace {

using namespace gradcomp_fuzz;

/// The input re-written with `width`-byte indices (header, count u64, indices, values): what a
/// payload whose index type travels with that width must re-encode an accepted input to.
bytes_t with_index_width(std::span<const std::byte> in, int width) {
  const int from = std::to_integer<int>(in[5]);
  if (from == width) return bytes_t(in.begin(), in.end());
  const auto count = static_cast<std::size_t>(load_le(in.data() + 16, 8));
  bytes_t out(in.begin(), in.begin() + 24);
  out[5] = static_cast<std::byte>(width);
  for (std::size_t j = 0; j < count; ++j) store_le(out, load_le(in.data() + 24 + j * from, from), width);
  out.insert(out.end(), in.begin() + 24 + static_cast<std::ptrdiff_t>(count * from), in.end());
  return out;
}

template <class T, class Index>
bool run(std::span<const std::byte> in) {
  using P = gc::sparse_vector<T, Index>;
  P prior;
  prior.dim = 5;
  prior.indices = {1, 3};
  prior.values = {T(1.5), T(-2)};
  return check_decoder(
      in, prior, [](std::span<const std::byte> b) { return with_index_width(b, P::wire_index_bytes); },
      // count * (sizeof(Index) + sizeof(T)) against count * (4 or 8 + sizeof(T)) on the wire.
      [](std::size_t n) { return 2 * n; }, [](const P& p) { return p.dim; },
      [](const P& p, std::vector<T>& dense) {
        for (std::size_t j = 0; j < p.indices.size(); ++j) dense[p.indices[j]] += T(1) * p.values[j];
      },
      [](const P& p) {
        GRADCOMP_FUZZ_CHECK(p.indices.size() == p.values.size());
        for (std::size_t j = 0; j < p.indices.size(); ++j) {
          GRADCOMP_FUZZ_CHECK(p.indices[j] < p.dim);
          GRADCOMP_FUZZ_CHECK(j == 0 || p.indices[j - 1] < p.indices[j]);
        }
      });
}

template <class T>
void run_all(std::span<const std::byte> in) {
  check_index_widths([&]<class Index>() { return run<T, Index>(in); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  run_all<float>(in);
  run_all<double>(in);
  return 0;
}
