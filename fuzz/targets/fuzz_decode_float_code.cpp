// Fuzz target: gc::decode / gc::decode_into of float_code_vector<T> for float and double
// (fuzz_support.hpp lists the invariants checked). Every code takes at least 9 bits on the wire
// and 16 in memory, so a decode may allocate up to 16/9 times its input. Whatever it accepts
// decodes to finite values.
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <gradcomp/float16.hpp>
#include <gradcomp/payload/float_code.hpp>
#include <span>
#include <vector>

#include "fuzz_support.hpp"

namespace {

using namespace gradcomp_fuzz;

/// What a code is, from the format's definition: float16 and bfloat16 through float16.hpp's
/// exact widening; power_of_two as T's bits with the sign above the exponent field.
template <class T>
double code_value(gc::code_format f, std::uint16_t code) {
  if (f == gc::code_format::float16) return gc::to_float(gc::float16{code});
  if (f == gc::code_format::bfloat16) return gc::to_float(gc::bfloat16{code});
  if constexpr (sizeof(T) == 4)
    return std::bit_cast<float>((static_cast<std::uint32_t>(code >> 8) << 31) | (static_cast<std::uint32_t>(code & 0xffu) << 23));
  else
    return std::bit_cast<double>((static_cast<std::uint64_t>(code >> 11) << 63) |
                                 (static_cast<std::uint64_t>(code & 0x7ffu) << 52));
}

template <class T>
void run(std::span<const std::byte> in) {
  using P = gc::float_code_vector<T>;
  P prior;
  prior.dim = 3;
  prior.format = gc::code_format::bfloat16;
  prior.scale_exponent = 5;
  prior.codes = {0x3f80, 0xc000, 0x0000};
  check_decoder(
      in, prior, [](std::span<const std::byte> b) { return bytes_t(b.begin(), b.end()); },
      [](std::size_t n) { return 2 * n + 64; }, [](const P& p) { return p.dim; },
      [](const P& p, std::vector<T>& dense) {
        for (std::size_t i = 0; i < p.dim; ++i)
          dense[i] += T(1) * static_cast<T>(std::ldexp(code_value<T>(p.format, p.codes[i]), -p.scale_exponent));
      },
      [](const P& p) {
        GRADCOMP_FUZZ_CHECK(p.codes.size() == p.dim);
        const unsigned bits = p.format == gc::code_format::power_of_two ? (sizeof(T) == 4 ? 9u : 12u) : 16u;
        GRADCOMP_FUZZ_CHECK(p.code_bits() == bits);
        const auto range = gc::detail::scale_exponent_range<T>(p.format);
        GRADCOMP_FUZZ_CHECK(p.scale_exponent >= range.lo && p.scale_exponent <= range.hi);
        for (std::size_t i = 0; i < p.dim; ++i) {
          GRADCOMP_FUZZ_CHECK(p.codes[i] < (std::uint32_t{1} << bits));
          GRADCOMP_FUZZ_CHECK(std::isfinite(p.value(i)));
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
