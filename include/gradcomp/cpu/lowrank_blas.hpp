#pragma once
// exec::par's products for PowerSGD (lowrank/matmul.hpp) through a CBLAS sgemm / dgemm:
// OpenBLAS on Debian (libopenblas-dev), multithreaded with its own threads. Present only
// where gradcomp::blas is linked (it defines GRADCOMP_HAVE_CBLAS); without it exec::par falls
// back to the reference loops (exec::seq), as for any hook it lacks.
//
// Not bit for bit: BLAS sums in its own blocked order and in T (float accumulation for
// float), where the reference sums in order in double. docs/powersgd.md states the tolerance
// the tests hold it to.
#include <cstddef>
#include <limits>
#include <span>
#include <type_traits>

#include "../lowrank/matmul.hpp"
#include "policy.hpp"

#if defined(GRADCOMP_HAVE_CBLAS)
#include <cblas.h>

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// c = op(a) op(b) through cblas_?gemm (row-major). Sizes beyond BLAS's int run the reference.
template <class T>
  requires(std::is_same_v<T, float> || std::is_same_v<T, double>)
void lowrank_gemm_with(const par_t&, lowrank::gemm_shape s, std::span<const T> a, std::span<const T> b,
                       std::span<T> c) {
  constexpr auto int_max = static_cast<std::size_t>(std::numeric_limits<int>::max());
  if (s.rows > int_max || s.cols > int_max || s.inner > int_max) return lowrank::reference_gemm(s, a, b, c);
  if (s.rows == 0 || s.cols == 0) return;
  if (s.inner == 0) {  // an empty sum; BLAS would reject the leading dimensions of 0
    for (T& v : c) v = T(0);
    return;
  }
  const int m = static_cast<int>(s.rows), n = static_cast<int>(s.cols), k = static_cast<int>(s.inner);
  const int lda = s.a_transposed ? m : k, ldb = s.b_transposed ? k : n;
  const auto ta = s.a_transposed ? CblasTrans : CblasNoTrans, tb = s.b_transposed ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), n);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a.data(), lda, b.data(), ldb, 0.0, c.data(), n);
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI

#endif  // GRADCOMP_HAVE_CBLAS
