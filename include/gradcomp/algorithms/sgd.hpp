#pragma once
// What the distributed schemes share of SGD: the options (step size, momentum and where it
// goes), the per-step settings (this step's learning rate and loss scale), what a step did,
// their checks, and the element-wise update rules, each with its roundings spelled out (no
// contraction into FMA), so every rank and every communicator computes the same bits.
#include <cmath>
#include <cstddef>
#include <span>

#include "../detail/host_device.hpp"
#include "../detail/strict_fp.hpp"
#include "../error.hpp"
#include "exchange_options.hpp"

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
  /// ef_sgd only. true: error feedback (the residual keeps what was not sent). false: plain
  /// compressed SGD, m_i = C(lr u_i) and what was not sent is dropped: how QSGD, TernGrad,
  /// natural compression and the casts are run in their papers (unbiased or nearly exact
  /// compressors), and how a wrapper that keeps its own state (momentum<error_feedback<C>>,
  /// DGC's momentum correction) runs without a second residual.
  bool error_feedback = true;
  /// ef_sgd over a sparsifier only: how the messages travel (allgather, or a sparse
  /// reduce-scatter or recursive doubling that keeps the global Top-k of their sum;
  /// sparse_exchange.hpp, docs/distributed.md).
  exchange_options exchange = {};
};

/// One step's settings, for schedules and mixed precision: the learning rate of this step,
/// and the loss scale S the gradient was computed with (g holds S times the gradient; the
/// schemes divide it out before anything reaches a residual, so residuals never hold
/// S-scaled values and a change of S needs no correction). docs/distributed.md, "Learning
/// rate and loss scale".
struct step_options {
  double lr = 0.0;          // > 0, finite
  double loss_scale = 1.0;  // > 0, finite
};

/// What a step did.
enum class step_status {
  applied,  // the update was applied
  skipped,  // some rank's gradient held NaN or Inf (a loss-scale overflow): nothing changed
};

namespace detail {

inline void check_sgd_options(const sgd_options& opt, const char* where) {
  if (!(opt.lr > 0.0) || !std::isfinite(opt.lr)) fail(where, "lr must be finite and > 0 (got ", opt.lr, ")");
  if (!(opt.momentum >= 0.0 && opt.momentum < 1.0)) fail(where, "momentum must be in [0, 1) (got ", opt.momentum, ")");
}

inline void check_step_options(const step_options& s, const char* where) {
  if (!(s.lr > 0.0) || !std::isfinite(s.lr)) fail(where, "lr must be finite and > 0 (got ", s.lr, ")");
  if (!(s.loss_scale > 0.0) || !std::isfinite(s.loss_scale))
    fail(where, "loss_scale must be finite and > 0 (got ", s.loss_scale, ")");
}

/// The factor that takes g (S times the gradient) to `units` times the gradient, computed in
/// double and rounded once: exactly units / S in T when S is a power of two (the usual loss
/// scales), and exactly units when S = 1.
template <class T>
T unscale_factor(double units, double loss_scale) {
  return static_cast<T>(units / loss_scale);
}

/// out = beta * v + s * g (s * g skipped when s is 1, so a unit loss scale changes no bit).
/// GRADCOMP_HD: the device scheme (cuda/ef_sgd.cuh) calls it per element.
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD void momentum_into(T beta, std::span<const T> v, std::span<const T> g, T s,
                                                       std::span<T> out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  if (s == T(1))
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = beta * v[i] + g[i];
  else
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = beta * v[i] + s * g[i];
}

/// out = beta * v + g (two roundings).
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD void momentum_into(T beta, std::span<const T> v, std::span<const T> g,
                                                       std::span<T> out) {
  momentum_into(beta, v, g, T(1), out);
}

/// out = s * g (out = g when s is 1).
template <class T>
GRADCOMP_NO_FP_CONTRACT void scale_into(T s, std::span<const T> g, std::span<T> out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  if (s == T(1))
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = g[i];
  else
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = s * g[i];
}

/// x += u.
template <class T>
GRADCOMP_NO_FP_CONTRACT void add_to(std::span<T> x, std::span<const T> u) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += u[i];
}

/// x -= u (GRADCOMP_HD: the device scheme calls it per element).
template <class T>
GRADCOMP_NO_FP_CONTRACT GRADCOMP_HD void subtract(std::span<T> x, std::span<const T> u) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t i = 0; i < x.size(); ++i) x[i] -= u[i];
}

}  // namespace detail

}  // namespace gradcomp
