// Fuzz target: gc::decode / gc::decode_into of bucket_quantized_vector<T> for float and double
// (fuzz_support.hpp lists the invariants checked). Every level costs at least one bit on the
// wire and a byte in memory, and the (min, unit) pairs are copied from the buffer, so a decode
// may allocate up to 9 times its input.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <gradcomp/payload/bucket_quantized.hpp>
#include <span>
#include <vector>

#include "fuzz_support.hpp"

namespace {

using namespace gradcomp_fuzz;

template <class T>
void run(std::span<const std::byte> in) {
  using P = gc::bucket_quantized_vector<T>;
  P prior;
  prior.dim = 3;
  prior.bucket_size = 2;
  prior.bits = 4;
  prior.mins = {T(-1), T(0.5)};
  prior.units = {T(0.25), T(0)};
  prior.levels = {3, 15, 0};
  check_decoder(
      in, prior, [](std::span<const std::byte> b) { return bytes_t(b.begin(), b.end()); },
      [](std::size_t n) { return 9 * n + 64; }, [](const P& p) { return p.dim; },
      [](const P& p, std::vector<T>& dense) {
        for (std::size_t i = 0; i < p.dim; ++i) {
          const T scaled = p.units[i / p.bucket_size] * static_cast<T>(p.levels[i]);
          dense[i] += T(1) * (p.mins[i / p.bucket_size] + scaled);
        }
      },
      [](const P& p) {
        GRADCOMP_FUZZ_CHECK(p.bits >= 1 && p.bits <= 8);
        GRADCOMP_FUZZ_CHECK(p.bucket_size >= 1);
        GRADCOMP_FUZZ_CHECK(p.levels.size() == p.dim);
        const std::size_t buckets = p.dim == 0 ? 0 : (p.dim - 1) / p.bucket_size + 1;
        GRADCOMP_FUZZ_CHECK(p.mins.size() == buckets && p.units.size() == buckets);
        for (const std::uint8_t l : p.levels) GRADCOMP_FUZZ_CHECK(l < (1u << p.bits));
        const T top = static_cast<T>((1u << p.bits) - 1);
        for (std::size_t b = 0; b < buckets; ++b) {
          // Every level of an accepted payload decodes to a finite value.
          GRADCOMP_FUZZ_CHECK(std::isfinite(p.mins[b]) && std::isfinite(p.units[b]) && !std::signbit(p.units[b]));
          const T scaled = p.units[b] * top;
          GRADCOMP_FUZZ_CHECK(std::isfinite(p.mins[b] + scaled));
        }
      });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  run<float>(in);
  run<double>(in);
  return 0;
}
