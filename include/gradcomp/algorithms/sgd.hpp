#pragma once
// What the distributed schemes share of SGD: the options (step size, momentum and where it
// goes), their checks, and the element-wise update rules, each with its roundings spelled
// out (no contraction into FMA), so every rank and every communicator computes the same bits.
#include <cmath>
#include <cstddef>
#include <span>

#include "../detail/strict_fp.hpp"
#include "../error.hpp"

namespace gradcomp {

/// Where momentum goes in EF-SGD.
enum class momentum_mode {
  on_aggregate,  // compress the gradient; one momentum on the aggregated update
  in_update,     // compress the local momentum update
};

struct sgd_options {
  double lr = 0.1;        // the step size gamma (> 0, finite)
  double momentum = 0.0;  // beta in [0, 1)
  momentum_mode mode = momentum_mode::on_aggregate;
};

namespace detail {

inline void check_sgd_options(const sgd_options& opt, const char* where) {
  if (!(opt.lr > 0.0) || !std::isfinite(opt.lr)) fail(where, "lr must be finite and > 0 (got ", opt.lr, ")");
  if (!(opt.momentum >= 0.0 && opt.momentum < 1.0)) fail(where, "momentum must be in [0, 1) (got ", opt.momentum, ")");
}

/// v = beta * v + g (two roundings).
template <class T>
GRADCOMP_NO_FP_CONTRACT void momentum_into(T beta, std::span<const T> v, std::span<const T> g, std::span<T> out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = beta * v[i] + g[i];
}

/// x -= u.
template <class T>
GRADCOMP_NO_FP_CONTRACT void subtract(std::span<T> x, std::span<const T> u) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t i = 0; i < x.size(); ++i) x[i] -= u[i];
}

}  // namespace detail

}  // namespace gradcomp
