#pragma once
// The element formulas that every back end must reproduce bit for bit, each written once.
// The sequential reference loops call them, and so do the scalar tails of the SIMD kernels;
// a SIMD lane or a GPU thread computes the same operations in the same order.
//
// Each is marked GRADCOMP_NO_FP_CONTRACT: the roundings are part of the definition, and a
// compiler that fused a * b + c into an FMA on one back end only would break bit-identity.
// (Callers in kernels carry the same mark, so these inline into them.)
#include <cstddef>
#include <span>

#include "strict_fp.hpp"

namespace gradcomp::detail {

/// The error-feedback input p = e + scale * g: two roundings, and exactly e + g when scale is
/// 1 (the product is skipped, so a NaN scale never reaches a unit-scale step).
template <class T>
GRADCOMP_NO_FP_CONTRACT inline T feedback_element(T e, T g, T scale) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  return scale == T(1) ? e + g : e + scale * g;
}

/// dense + alpha * value: how every payload adds a decoded element (two roundings).
template <class T>
GRADCOMP_NO_FP_CONTRACT inline T add_scaled(T dense, T alpha, T value) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  return dense + alpha * value;
}

/// p = e + scale * g over spans: the reference loop of the error-feedback input.
template <class T>
void feedback_input(std::span<const T> e, std::span<const T> g, T scale, std::span<T> p) {
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = feedback_element(e[i], g[i], scale);
}

}  // namespace gradcomp::detail
