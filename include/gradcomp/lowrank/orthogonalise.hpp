#pragma once
// PowerSGD's orthogonalisation of P (rows x r, row-major): modified Gram-Schmidt, column by
// column in a fixed order (0, 1, ..., r - 1), so every rank turns the same all-reduced P into
// the same bits.
//
// For column j: remember its norm before; subtract its projection onto each earlier
// (already orthonormal) column i = 0, ..., j - 1 in turn, each time using the updated column
// (that is what makes it the modified, numerically stable variant); then
//   - if what is left is at most degenerate_column_ratio<T> times the norm it had before (the
//     column lay, up to rounding, in the span of the earlier ones), or the column was zero,
//     the column is set to zero: it is degenerate, it contributes nothing to P Q^T this step,
//     and its column of Q becomes zero (warm_start.hpp draws it afresh for the next step);
//   - else it is divided by its norm.
// Dot products and norms are accumulated in lowrank::accumulator (double) in index order;
// each updated entry is rounded to T once. The input must be finite (the scheme checks
// before): a NaN would otherwise read as a degenerate column.
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

#include "../detail/strict_fp.hpp"
#include "matmul.hpp"

namespace gradcomp::lowrank {

/// The relative size below which a column left after the projections counts as degenerate:
/// 1024 epsilons (about 1.2e-4 for float, 2.3e-13 for double). The rounding residue of a
/// column that lies in the earlier columns' span is a few epsilons of its norm per projection,
/// so this drops such columns for any practical rank, and loses at most that fraction of a
/// genuine direction (which the next step's fresh draw then finds again).
template <class T>
inline constexpr accumulator degenerate_column_ratio = 1024 * static_cast<accumulator>(std::numeric_limits<T>::epsilon());

/// Orthonormalises the columns of p (rows x r, row-major) in place, as described above.
/// Returns the number of degenerate columns (set to zero).
template <class T>
GRADCOMP_NO_FP_CONTRACT std::size_t orthogonalise(std::span<T> p, std::size_t rows, std::size_t r) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t degenerate = 0;
  for (std::size_t j = 0; j < r; ++j) {
    T* col = p.data() + j;  // column j: col[k * r]
    const accumulator before = std::sqrt(strided_dot(rows, col, r, col, r));
    for (std::size_t i = 0; i < j; ++i) {
      const T* done = p.data() + i;  // an earlier column: unit length, or zero
      const accumulator along = strided_dot(rows, done, r, col, r);
      for (std::size_t k = 0; k < rows; ++k)
        col[k * r] = static_cast<T>(static_cast<accumulator>(col[k * r]) - along * static_cast<accumulator>(done[k * r]));
    }
    const accumulator after = std::sqrt(strided_dot(rows, col, r, col, r));
    if (!(before > 0) || !(after > degenerate_column_ratio<T> * before)) {
      for (std::size_t k = 0; k < rows; ++k) col[k * r] = T(0);
      ++degenerate;
      continue;
    }
    for (std::size_t k = 0; k < rows; ++k) col[k * r] = static_cast<T>(static_cast<accumulator>(col[k * r]) / after);
  }
  return degenerate;
}

}  // namespace gradcomp::lowrank
