#pragma once
// The matrix products of PowerSGD: C = op(A) op(B) for row-major matrices, where op(A) is A
// or its transpose. PowerSGD needs three: P = M Q, Q = M^T P and the decoded P Q^T.
//
// The reference (exec::seq) computes every entry as one dot product: the terms added in
// order of the inner index, k = 0, 1, ..., in `accumulator` (double, for T = float and for
// T = double), rounded once to T. Double accumulation keeps the reference's rounding error
// far below float's (a float sum over the 4608 columns of a ResNet layer would lose about
// 12 bits in the worst case), so the reference is the accurate side of every comparison.
//
// A back end provides lowrank_gemm_with(policy, a_transposed, b_transposed, rows, cols,
// inner, a, b, c), found by argument-dependent lookup (the rule of backend.hpp: the policy's
// hook, then its fallback's, then the reference). exec::par's (cpu/lowrank_blas.hpp) calls a
// BLAS sgemm/dgemm: it sums in another order and in T, so it matches the reference within a
// tolerance, not bit for bit (docs/powersgd.md).
#include <cstddef>
#include <span>

#include "../backend.hpp"
#include "../detail/strict_fp.hpp"
#include "../execution.hpp"

namespace gradcomp::lowrank {

/// The type every reference dot product is accumulated in (the one place that decides it).
using accumulator = double;

/// sum over k < n of a[k * a_stride] * b[k * b_stride], in k order, in `accumulator`.
template <class T>
GRADCOMP_NO_FP_CONTRACT accumulator strided_dot(std::size_t n, const T* a, std::size_t a_stride, const T* b,
                                                std::size_t b_stride) noexcept {
  GRADCOMP_NO_FP_CONTRACT_BODY
  accumulator sum = 0;
  for (std::size_t k = 0; k < n; ++k)
    sum += static_cast<accumulator>(a[k * a_stride]) * static_cast<accumulator>(b[k * b_stride]);
  return sum;
}

/// The shape of one product: c (rows x cols) = op(a) (rows x inner) * op(b) (inner x cols).
/// a is stored rows x inner, or inner x rows when a_transposed; b is stored inner x cols, or
/// cols x inner when b_transposed. All row-major, densely packed.
struct gemm_shape {
  bool a_transposed = false;
  bool b_transposed = false;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t inner = 0;
};

/// The reference product: c[i][j] = strided_dot over the inner index, rounded once to T.
template <class T>
void reference_gemm(gemm_shape s, std::span<const T> a, std::span<const T> b, std::span<T> c) {
  for (std::size_t i = 0; i < s.rows; ++i) {
    // Row i of op(a): a[i][k] (step 1), or a[k][i] (step rows) when transposed.
    const T* a_row = s.a_transposed ? a.data() + i : a.data() + i * s.inner;
    const std::size_t a_step = s.a_transposed ? s.rows : 1;
    for (std::size_t j = 0; j < s.cols; ++j) {
      // Column j of op(b): b[k][j] (step cols), or b[j][k] (step 1) when transposed.
      const T* b_col = s.b_transposed ? b.data() + j * s.inner : b.data() + j;
      const std::size_t b_step = s.b_transposed ? 1 : s.cols;
      c[i * s.cols + j] = static_cast<T>(strided_dot(s.inner, a_row, a_step, b_col, b_step));
    }
  }
}

// The hook's name, declared deleted so that the unqualified call below finds a back end's
// function by argument-dependent lookup only.
void lowrank_gemm_with() = delete;

/// backend::run's hook for the product.
struct gemm_hook {
  template <class Policy, class T>
  static auto call(const Policy& q, gemm_shape s, std::span<const T> a, std::span<const T> b, std::span<T> c)
      -> decltype(lowrank_gemm_with(q, s, a, b, c)) {
    return lowrank_gemm_with(q, s, a, b, c);
  }
  template <class Policy, class T>
  static void reference(const Policy&, gemm_shape s, std::span<const T> a, std::span<const T> b, std::span<T> c) {
    reference_gemm(s, a, b, c);
  }
};

/// c = op(a) op(b) on the policy's back end (the spans have the shape's sizes).
template <execution_policy Policy, class T>
void gemm(const Policy& policy, gemm_shape s, std::span<const T> a, std::span<const T> b, std::span<T> c) {
  backend::run<gemm_hook>(policy, s, a, b, c);
}

}  // namespace gradcomp::lowrank
