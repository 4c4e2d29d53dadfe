#pragma once
// gc::powersgd: PowerSGD's low-rank compression with error feedback (Vogels, Karimireddy and
// Jaggi, NeurIPS 2019, Algorithm 1), for a model given as a list of matrix-shaped tensors
// (lowrank/shapes.hpp). One worker's state: per compressed tensor, the residual e and the
// warm-started Q. One step with gradient g and factor scale (lr / loss scale in
// powersgd_sgd), given allreduce_mean (the mean over workers, in place):
//
//   for each compressed tensor (rows x cols, rank r):
//     M = e + scale * g                      (rows x cols)
//     P = M Q                                (rows x r)
//   allreduce_mean(uncompressed tensors' scale * g, and every P)      the first all-reduce
//   for each compressed tensor:
//     P = orthogonalise(P)                   (lowrank/orthogonalise.hpp)
//     Q = M^T P                              (cols x r)
//   allreduce_mean(every Q)                                           the second all-reduce
//   for each compressed tensor:
//     decoded = P Q^T;  e = M - decoded;  keep Q for the next step (the warm start)
//   uncompressed tensors: decoded = their mean (no residual: they are sent exactly)
//
// decoded is the same on every worker: P and Q are all-reduced, and P Q^T = P P^T mean(M) is
// the mean of the workers' M projected onto the span of P. Uncompressed tensors are those the
// skip rule leaves out (r (rows + cols) >= rows cols, every 1-D tensor).
//
// The guarantee, honestly: none per step. With one warm-started power iteration per step,
// ||M - P Q^T||^2 is not bounded by any fixed fraction of ||M||^2 (a Q nearly orthogonal to
// M's top singular vectors gives a poor P), so powersgd is declared neither contractive nor
// absolute nor unbiased. What holds: for a fixed matrix the warm start is subspace iteration,
// and the error approaches the best rank-r error (Eckart-Young) as steps go by; the tests and
// docs/powersgd.md measure the ratio to it.
//
// Back ends: the three products go through lowrank::gemm (exec::par: BLAS, within a tolerance
// of the reference, docs/powersgd.md), M = e + scale g through the feedback_input hook (the
// same bits on every back end); the orthogonalisation and the rest are the reference loops.
//
// Failures: prepare() checks everything local (lengths, M finite) before any state changes;
// finish() fails only on what is identical on every worker (the all-reduced P and Q not
// finite, or the communicator's error), and commits the new e and Q only after the last
// check. A failed step changes nothing.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "../algorithms/exchange.hpp"
#include "../backend.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "matmul.hpp"
#include "orthogonalise.hpp"
#include "shapes.hpp"
#include "warm_start.hpp"

namespace gradcomp {

struct powersgd_options {
  std::size_t rank = 2;     // r >= 1: columns of P and Q
  std::uint64_t seed = 0;   // Q's initial draw (and fresh draws of zero columns), warm_start.hpp
};

/// What the last step found (identical on every worker).
struct powersgd_step_info {
  std::size_t degenerate_columns = 0;  // columns of P set to zero by orthogonalise
  std::size_t redrawn_columns = 0;     // zero columns of Q replaced by a fresh draw for the next step
};

template <std::floating_point T = float>
class powersgd {
 public:
  using value_type = T;

  /// Zero residuals; each compressed tensor's Q is its initial draw. Throws gc::error if the
  /// rank is 0 or a size overflows.
  powersgd(std::span<const tensor_shape> shapes, powersgd_options opt) : opt_(opt) {
    if (opt.rank == 0) detail::fail("powersgd", "rank must be at least 1 (got 0)");
    layout_ = lowrank::model_layout::of(shapes, opt.rank, "powersgd");
    residual_.assign(layout_.dim, T(0));
    m_.assign(layout_.dim, T(0));
    q_.assign(layout_.q_values, T(0));
    next_q_.assign(layout_.q_values, T(0));
    first_.assign(layout_.uncompressed_values + layout_.p_values, T(0));
    for (std::size_t t = 0; t < layout_.tensors.size(); ++t)
      if (layout_.tensors[t].compressed) lowrank::initial_q(opt.seed, t, q_of(q_, layout_.tensors[t]));
  }

  powersgd(std::initializer_list<tensor_shape> shapes, powersgd_options opt)
      : powersgd(std::span<const tensor_shape>(shapes.begin(), shapes.size()), opt) {}

  /// One step on a single worker (allreduce_mean(values) leaves the mean over workers in
  /// values; for one worker, nothing to do). decoded receives the mean decoded update.
  template <execution_policy Policy, class AllreduceMean>
  void step(const Policy& policy, std::span<const T> g, T scale, std::span<T> decoded, AllreduceMean&& allreduce_mean) {
    prepare(policy, g, scale, decoded.size(), "powersgd::step");
    finish(policy, decoded, allreduce_mean, "powersgd::step");
  }

  /// The local part: checks g's and decoded's lengths, forms M = e + scale * g, checks that it
  /// is finite. Changes no state; throws gc::error naming `where`.
  template <execution_policy Policy>
  void prepare(const Policy& policy, std::span<const T> g, T scale, std::size_t decoded_size, const char* where) {
    detail::check_length(where, "the gradient", g.size(), dim());
    detail::check_length(where, "the output", decoded_size, dim());
    backend::run<backend::feedback_input_hook>(policy, std::span<const T>(residual_), g, scale, std::span<T>(m_));
    if (!detail::all_finite(policy, std::span<const T>(m_)))
      detail::fail(where, "M = e + scale * g is not finite (an overflow: the gradient is finite, scale = ", scale, ")");
    prepared_ = true;
  }

  /// The exchange and the commit, after prepare(): the two all-reduces (see the header
  /// comment), decoded = the mean update, then e and Q are replaced. Throws (changing
  /// nothing, decoded included) only if an all-reduce does, or if the all-reduced
  /// P or Q is not finite: both are the same on every worker, so every worker throws alike.
  template <execution_policy Policy, class AllreduceMean>
  void finish(const Policy& policy, std::span<T> decoded, AllreduceMean&& allreduce_mean, const char* where) {
    if (!prepared_) detail::fail(where, "finish() needs a successful prepare() first");
    prepared_ = false;
    const std::size_t r = layout_.rank;
    // P = M Q for every compressed tensor; the uncompressed tensors' values go first.
    std::size_t u = 0;
    for (const auto& t : layout_.tensors) {
      if (t.compressed) {
        lowrank::gemm(policy, {.rows = t.shape.rows, .cols = r, .inner = t.shape.cols}, m_of(t),
                      std::span<const T>(q_of(q_, t)), p_of(t));
      } else {
        std::copy_n(m_.begin() + static_cast<std::ptrdiff_t>(t.offset), layout_.size_of(t), first_.begin() + static_cast<std::ptrdiff_t>(u));
        u += layout_.size_of(t);
      }
    }
    allreduce_mean(std::span<T>(first_));
    if (!detail::all_finite(policy, std::span<const T>(first_)))
      detail::fail(where, "the all-reduced P (or an uncompressed tensor's mean) is not finite");
    // Orthogonalise P, then Q = M^T P.
    powersgd_step_info info;
    for (const auto& t : layout_.tensors) {
      if (!t.compressed) continue;
      info.degenerate_columns += lowrank::orthogonalise(p_of(t), t.shape.rows, r);
      lowrank::gemm(policy, {.a_transposed = true, .rows = t.shape.cols, .cols = r, .inner = t.shape.rows}, m_of(t),
                    std::span<const T>(p_of(t)), q_of(next_q_, t));
    }
    allreduce_mean(std::span<T>(next_q_));
    if (!detail::all_finite(policy, std::span<const T>(next_q_)))
      detail::fail(where, "the all-reduced Q is not finite");
    // Nothing below throws: decode, the new residuals, the warm start for the next step.
    u = 0;
    for (std::size_t i = 0; i < layout_.tensors.size(); ++i) {
      const auto& t = layout_.tensors[i];
      const std::span<T> out = decoded.subspan(t.offset, layout_.size_of(t));
      const std::span<T> m(m_.data() + t.offset, layout_.size_of(t));
      if (t.compressed) {
        lowrank::gemm(policy, {.b_transposed = true, .rows = t.shape.rows, .cols = t.shape.cols, .inner = r},
                      std::span<const T>(p_of(t)), std::span<const T>(q_of(next_q_, t)), out);
        residual_of(m, out);  // m becomes e = M - decoded
        info.redrawn_columns += lowrank::redraw_zero_columns(opt_.seed, i, steps_ + 1, q_of(next_q_, t), t.shape.cols, r);
      } else {
        std::copy_n(first_.begin() + static_cast<std::ptrdiff_t>(u), out.size(), out.begin());
        std::fill(m.begin(), m.end(), T(0));  // sent exactly: no residual
        u += out.size();
      }
    }
    std::swap(residual_, m_);
    std::swap(q_, next_q_);
    ++steps_;
    last_ = info;
  }

  std::size_t dim() const noexcept { return layout_.dim; }
  const powersgd_options& options() const noexcept { return opt_; }
  const lowrank::model_layout& layout() const noexcept { return layout_; }
  /// Values all-reduced per step: the uncompressed tensors, every P and every Q.
  std::size_t values_per_step() const noexcept { return first_.size() + next_q_.size(); }
  /// The residual e over the whole model (zero on uncompressed tensors).
  std::span<const T> residual() const noexcept { return residual_; }
  /// Tensor i's residual (rows x cols) and Q (cols x r; empty for an uncompressed tensor).
  std::span<const T> residual(std::size_t i) const { return std::span<const T>(residual_).subspan(slot(i).offset, layout_.size_of(slot(i))); }
  std::span<const T> q(std::size_t i) const {
    const auto& t = slot(i);
    return t.compressed ? std::span<const T>(q_).subspan(t.q_offset, t.shape.cols * layout_.rank) : std::span<const T>();
  }
  /// The last step's P (rows x r, orthonormal columns or zero) of tensor i (empty if uncompressed).
  std::span<const T> p(std::size_t i) const {
    const auto& t = slot(i);
    return t.compressed ? std::span<const T>(first_).subspan(layout_.uncompressed_values + t.p_offset, t.shape.rows * layout_.rank)
                        : std::span<const T>();
  }
  std::uint64_t steps() const noexcept { return steps_; }
  const powersgd_step_info& last_step() const noexcept { return last_; }

  /// For checkpoints: replaces the state (sizes checked by the caller).
  void restore(std::span<const T> residual, std::span<const T> q, std::uint64_t steps) {
    std::copy(residual.begin(), residual.end(), residual_.begin());
    std::copy(q.begin(), q.end(), q_.begin());
    steps_ = steps;
    prepared_ = false;
  }
  std::span<const T> all_q() const noexcept { return q_; }

 private:
  const lowrank::tensor_slot& slot(std::size_t i) const {
    if (i >= layout_.tensors.size()) detail::fail("powersgd", "tensor ", i, " is not in [0, ", layout_.tensors.size(), ")");
    return layout_.tensors[i];
  }
  std::span<const T> m_of(const lowrank::tensor_slot& t) const {
    return std::span<const T>(m_).subspan(t.offset, layout_.size_of(t));
  }
  std::span<T> p_of(const lowrank::tensor_slot& t) {
    return std::span<T>(first_).subspan(layout_.uncompressed_values + t.p_offset, t.shape.rows * layout_.rank);
  }
  std::span<T> q_of(std::vector<T>& q, const lowrank::tensor_slot& t) {
    return std::span<T>(q).subspan(t.q_offset, t.shape.cols * layout_.rank);
  }
  /// m = m - decoded, element by element (one rounding each).
  GRADCOMP_NO_FP_CONTRACT static void residual_of(std::span<T> m, std::span<const T> decoded) {
    GRADCOMP_NO_FP_CONTRACT_BODY
    for (std::size_t k = 0; k < m.size(); ++k) m[k] -= decoded[k];
  }

  powersgd_options opt_;
  lowrank::model_layout layout_;
  std::vector<T> residual_;  // e, whole model
  std::vector<T> m_;         // M during a step; becomes the new e at the commit
  std::vector<T> q_;         // every compressed tensor's Q (the warm start)
  std::vector<T> next_q_;    // this step's M^T P, committed at the end
  std::vector<T> first_;     // the first all-reduce: uncompressed values, then every P
  std::uint64_t steps_ = 0;
  bool prepared_ = false;
  powersgd_step_info last_;
};

}  // namespace gradcomp
