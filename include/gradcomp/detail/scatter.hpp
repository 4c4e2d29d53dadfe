#pragma once
// The scatter-add shared by the sparse payloads.
#include <cstddef>
#include <span>
#include <vector>

#include "element_rules.hpp"
#include "strict_fp.hpp"
#include "../error.hpp"

namespace gradcomp::detail {

/// dense[indices[j]] += alpha * values[j], after checking every index (a payload built by
/// hand may be wrong, and a wrong index must not write out of bounds).
template <class T, class Index>
GRADCOMP_NO_FP_CONTRACT void scatter_add(std::size_t dim, const std::vector<Index>& indices, const std::vector<T>& values,
                 std::span<T> dense, T alpha) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  if (dense.size() != dim) fail("decompress_add", "dense size ", dense.size(), " does not match payload dim ", dim);
  if (indices.size() != values.size())
    fail("decompress_add", "payload has ", indices.size(), " indices but ", values.size(), " values");
  for (std::size_t j = 0; j < indices.size(); ++j)
    if (indices[j] >= dim) fail("decompress_add", "index ", indices[j], " at position ", j, " is >= dim ", dim);
  for (std::size_t j = 0; j < indices.size(); ++j) dense[indices[j]] = add_scaled(dense[indices[j]], alpha, values[j]);
}

}  // namespace gradcomp::detail
