#pragma once
#include <cmath>
#include <cstddef>
#include <span>

#include "../error.hpp"

namespace gradcomp::detail {

/// Fails naming the first non-finite entry of x (a quantizer cannot represent NaN or Inf).
template <class T>
void require_finite(std::span<const T> x, const char* where) {
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i])) fail(where, "x[", i, "] = ", x[i], " is not finite; this quantizer needs finite input");
}

}  // namespace gradcomp::detail
