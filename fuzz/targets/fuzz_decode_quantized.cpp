// Fuzz target: gc::decode / gc::decode_into of quantized_vector<T> for float and double
// (fuzz_support.hpp lists the invariants checked), with both level codings (linear, and the
// power-of-two coding of natural dithering). Every level costs at least one bit on the wire
// and is an int32 in memory, so a decode may allocate up to 32 times its input.
#include <cstddef>
#include <cstdint>
#include <gradcomp/detail/bitpack.hpp>
#include <gradcomp/payload/quantized.hpp>
#include <span>
#include <vector>

#include "fuzz_support.hpp"

namespace {

using namespace gradcomp_fuzz;

template <class T>
void run(std::span<const std::byte> in) {
  using P = gc::quantized_vector<T>;
  P prior;
  prior.dim = 3;
  prior.scale = T(0.25);
  prior.level_bits = 4;
  prior.levels = {3, -8, 0};
  check_decoder(
      in, prior, [](std::span<const std::byte> b) { return bytes_t(b.begin(), b.end()); },
      [](std::size_t n) { return 32 * n + 64; }, [](const P& p) { return p.dim; },
      [](const P& p, std::vector<T>& dense) {
        for (std::size_t i = 0; i < p.dim; ++i) dense[i] += T(1) * (p.scale * static_cast<T>(p.levels[i]));
      },
      [](const P& p) {
        GRADCOMP_FUZZ_CHECK(p.levels.size() == p.dim);
        GRADCOMP_FUZZ_CHECK(p.level_bits >= 1 && p.level_bits <= 32);
        GRADCOMP_FUZZ_CHECK(p.coding == gc::level_coding::linear || p.coding == gc::level_coding::power_of_two);
        for (const std::int32_t l : p.levels) {
          GRADCOMP_FUZZ_CHECK(gc::detail::level_code(l, p.coding) < (std::uint64_t{1} << p.level_bits));
          if (p.coding == gc::level_coding::power_of_two) GRADCOMP_FUZZ_CHECK(gc::detail::is_power_of_two_level(l));
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
