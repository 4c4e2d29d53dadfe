// Fuzz target: gc::decode / gc::decode_into of two_level_vector<T> (onebit's payload) for float
// and double (fuzz_support.hpp lists the invariants checked).
#include <cstddef>
#include <cstdint>
#include <gradcomp/payload/two_level.hpp>
#include <span>
#include <vector>

#include "fuzz_support.hpp"

namespace {

using namespace gradcomp_fuzz;

template <class T>
void run(std::span<const std::byte> in) {
  using P = gc::two_level_vector<T>;
  P prior;
  prior.reset(9, 4);
  prior.lows = {T(-1), T(-2), T(0)};
  prior.highs = {T(1), T(0.5), T(3)};
  prior.negative[0] = 0x105;
  check_decoder(
      in, prior, [](std::span<const std::byte> b) { return bytes_t(b.begin(), b.end()); },
      // The lows and highs as on the wire, and ceil(dim / 64) words for the ceil(dim / 8) bytes of bits.
      [](std::size_t n) { return 2 * n + 64; }, [](const P& p) { return p.dim; },
      [](const P& p, std::vector<T>& dense) {
        for (std::size_t i = 0; i < p.dim; ++i) {
          const bool negative = (p.negative[i / 64] >> (i % 64)) & 1u;
          const std::size_t b = i / p.block_size;
          dense[i] += T(1) * (negative ? p.lows[b] : p.highs[b]);
        }
      },
      [](const P& p) {
        GRADCOMP_FUZZ_CHECK(p.block_size >= 1);
        GRADCOMP_FUZZ_CHECK(p.lows.size() == p.blocks());
        GRADCOMP_FUZZ_CHECK(p.highs.size() == p.blocks());
        GRADCOMP_FUZZ_CHECK(p.negative.size() == (p.dim + 63) / 64);
        // No bit beyond dim (the padding is zero on the wire, and stays zero here).
        if (p.dim % 64 != 0) GRADCOMP_FUZZ_CHECK((p.negative.back() >> (p.dim % 64)) == 0);
      });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  run<float>(in);
  run<double>(in);
  return 0;
}
