#pragma once
// 16-bit gradient types: gc::bfloat16 and gc::float16 (IEEE binary16), as stored by PyTorch,
// CUDA (__nv_bfloat16, __half) and every mixed-precision trainer.
//
// They are storage types: two bytes holding the bit pattern, with exact widening to float
// and round-to-nearest-even narrowing from float. gradcomp computes in float32: a 16-bit
// gradient is widened (exactly) where it is read, and residuals and messages are float32
// (docs/error-feedback.md, "16-bit gradients"). Widening is exact, so a step on a 16-bit
// gradient gives the bits of the same step on the widened float gradient, on every back
// end; the conversions are written once, here, for the host and the device (GRADCOMP_HD).
#include <bit>
#include <concepts>
#include <cstdint>

#include "detail/host_device.hpp"

namespace gradcomp {

/// bfloat16: float32's sign and 8-bit exponent with a 7-bit mantissa (the high half of a
/// float32). Same bits as CUDA's __nv_bfloat16 and torch.bfloat16.
struct bfloat16 {
  std::uint16_t bits = 0;
  friend constexpr bool operator==(bfloat16, bfloat16) = default;
};

/// IEEE 754 binary16: 5-bit exponent, 10-bit mantissa, largest finite 65504. Same bits as
/// CUDA's __half and torch.float16.
struct float16 {
  std::uint16_t bits = 0;
  friend constexpr bool operator==(float16, float16) = default;
};

/// The 16-bit gradient types gradcomp reads.
template <class T>
concept half_precision = std::same_as<T, bfloat16> || std::same_as<T, float16>;

/// Exact widening: every bfloat16 is a float (NaN payloads kept).
GRADCOMP_HD constexpr float to_float(bfloat16 h) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h.bits) << 16);
}

/// Exact widening: every binary16 value, subnormals included, is a float; a NaN keeps its
/// sign and its payload in the high mantissa bits.
GRADCOMP_HD constexpr float to_float(float16 h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  std::uint32_t exponent = (h.bits >> 10) & 0x1fu;
  std::uint32_t mantissa = h.bits & 0x3ffu;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // Inf, NaN
  if (exponent == 0) {
    if (mantissa == 0) return std::bit_cast<float>(sign);  // +-0
    // Subnormal: m * 2^-24. Shift the leading one up to bit 10; each shift lowers the exponent.
    exponent = 1;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    mantissa &= 0x3ffu;
  }
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

/// float to bfloat16, rounding to nearest with ties to even; values from the largest
/// bfloat16 plus half an ulp up become Inf; a NaN stays a NaN (quieted, payload truncated).
GRADCOMP_HD constexpr bfloat16 to_bfloat16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bfloat16{static_cast<std::uint16_t>((u >> 16) | 0x0040u)};
  const std::uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  return bfloat16{static_cast<std::uint16_t>(rounded >> 16)};
}

/// float to binary16, rounding to nearest with ties to even: above 65504 plus half an ulp
/// becomes Inf, below the smallest subnormal's half becomes zero (sign kept), subnormals
/// are rounded once; a NaN stays a NaN (quieted, high payload bits kept).
GRADCOMP_HD constexpr float16 to_float16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return float16{static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu))};
  if (a >= 0x477ff000u) return float16{static_cast<std::uint16_t>(sign | 0x7c00u)};  // >= 65520: Inf
  if (a >= 0x38800000u) {  // normal in binary16 (>= 2^-14): drop 13 mantissa bits, ties to even
    const std::uint32_t rebased = a - (112u << 23);
    const std::uint32_t rounded = rebased + 0xfffu + ((rebased >> 13) & 1u);
    return float16{static_cast<std::uint16_t>(sign | (rounded >> 13))};
  }
  if (a < 0x33000000u) return float16{sign};  // below 2^-25: rounds to zero (2^-25 itself is a tie to 0)
  // Subnormal result: the value is m * 2^-24 with m = (1.mantissa) * 2^(e - 127 + 24).
  const std::uint32_t e = a >> 23;
  const std::uint32_t significand = (a & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126u - e;  // 14 .. 24: bits of significand below the result's ulp
  const std::uint32_t kept = significand >> shift;
  const std::uint32_t rest = significand & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1);
  const std::uint32_t m = kept + ((rest > half || (rest == half && (kept & 1u))) ? 1u : 0u);
  return float16{static_cast<std::uint16_t>(sign | m)};
}

/// Narrowing by target type: to_half<bfloat16>(f), to_half<float16>(f).
template <half_precision H>
GRADCOMP_HD constexpr H to_half(float f) noexcept {
  if constexpr (std::same_as<H, bfloat16>)
    return to_bfloat16(f);
  else
    return to_float16(f);
}

}  // namespace gradcomp
