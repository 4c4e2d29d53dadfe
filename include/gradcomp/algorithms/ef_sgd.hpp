#pragma once
// gc::ef_sgd: distributed SGD with error feedback (the hard-threshold paper's Algorithm 1),
// over any compressor and any communicator. Every rank is a worker holding a model replica
// x; one step on worker i with gradient g_i (holding S times the gradient, S the loss scale)
// and learning rate lr is
//     p_i = e_i + lr * u_i;   m_i = C(p_i);   e_i = p_i - decode(m_i)
//     x  -= update(mean over ranks of decode(m_j))
// with, for momentum beta (momentum_mode):
//   on_aggregate (gradient compression, the paper's default): u_i = g_i / S, and the mean of
//     the decoded messages a = mean_j decode(m_j) feeds one momentum v = beta * v + a, x -= v;
//   in_update (update compression): u_i = v_i = beta * v_i + g_i / S, the local momentum is
//     what gets compressed, and x -= a.
// With beta = 0 both are plain EF-SGD. With sgd_options::error_feedback = false the residual
// is dropped after every step (e_i = 0 before each step): plain compressed SGD, x -= mean_j
// decode(C(lr u_j)), for unbiased compressors and for wrappers with state of their own; the
// feedback's metrics then sum each step's compression error ||p_i - decode(m_i)||^2.
//
// EF21-SGD (Richtarik et al. 2021): C = ef21<C'> with error_feedback = false. Worker i sends
// m_i = C'(lr u_i - h_i) and moves its estimate h_i += decode(m_i) (feedback/ef21.hpp); every
// rank keeps the receivers' estimate H += mean_j decode(m_j), which is mean_j h_j, and steps
// x -= H (H in place of the mean above, momentum included). Replicas that start equal stay equal. The residual
// e_i is in parameter units (lr times gradients): a change of lr applies to new gradients
// only, and x - mean_i e_i follows SGD with the schedule exactly (docs/distributed.md).
//
// The exchange follows the compressor's aggregation class (aggregation.hpp): messages are
// allgathered and summed in rank order, or, for allreduce-class compressors (random-k,
// identity), summed in compressed form with an allreduce of their values after checking
// that they add up (every rank used the same seed, step and k).
//
// A step that fails on any rank (a bad gradient, a compressor error, a mismatched size)
// throws the same gc::error on every rank and changes nothing: ranks that had compressed
// take their error-feedback step back (error_feedback::undo). A step in which any rank's
// gradient holds NaN or Inf is skipped on every rank (step_status::skipped), changing
// nothing either.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "../comm/collectives.hpp"
#include "../comm/communicator.hpp"
#include "../concepts.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../feedback/ef21.hpp"
#include "../feedback/error_feedback.hpp"
#include "bucket_exchange.hpp"
#include "exchange.hpp"
#include "sgd.hpp"
#include "traffic.hpp"

namespace gradcomp {

template <class C, comm::communicator Comm, std::floating_point T = float>
  requires compressor<C, T>
class ef_sgd {
 public:
  using compressor_type = C;
  using payload_type = payload_t<C, T>;

  /// A worker of the scheme on this rank, for vectors of dimension dim. A collective: every
  /// rank constructs its worker with the same dim (else gc::error on every rank).
  ef_sgd(C c, Comm& comm, std::size_t dim, sgd_options opt = {})
      : comm_(&comm), round_(std::move(c), dim), opt_(opt), mean_(dim), momentum_(opt.momentum != 0.0 ? dim : 0),
        next_momentum_(opt.mode == momentum_mode::in_update ? momentum_.size() : 0),
        estimate_(detail::is_ef21<C> ? dim : 0) {
    detail::check_on_every_rank(comm, "ef_sgd", [&] {
      detail::check_sgd_options(opt, "ef_sgd");
      if constexpr (detail::is_ef21<C>) {
        if (opt.error_feedback)
          detail::fail("ef_sgd", "over ef21<C>, set sgd_options::error_feedback = false: EF21 keeps its own estimate, "
                                 "and a residual around it would feed the error back twice");
        if (round_.feedback().base().dim() != dim)
          detail::fail("ef_sgd", "the ef21 compressor has dimension ", round_.feedback().base().dim(),
                       ", the scheme ", dim);
      }
    });
    comm::agree_on(comm, dim, "ef_sgd", "the dimension");
  }

  /// One step with the options' lr and no loss scale. A collective.
  template <execution_policy Policy>
  step_status step(const Policy& policy, std::span<T> x, std::span<const T> g) {
    return step(policy, x, g, {.lr = opt_.lr, .loss_scale = 1.0});
  }

  /// One step with this step's lr and loss scale: compresses this worker's gradient g (with
  /// its residual), exchanges the messages, and applies the update to this rank's replica x.
  /// A collective. Returns skipped, having changed nothing, if any rank's g held NaN or Inf.
  template <execution_policy Policy>
  step_status step(const Policy& policy, std::span<T> x, std::span<const T> g, const step_options& s) {
    const char* where = "ef_sgd::step";
    const bool local_momentum = opt_.mode == momentum_mode::in_update && !momentum_.empty();
    round_.start(
        *comm_, policy, 0, g, where,
        [&] {
          detail::check_length(where, "x", x.size(), dim());
          detail::check_step_options(s, where);
        },
        [&]() -> std::pair<std::span<const T>, T> {
          if (!local_momentum) return {g, detail::unscale_factor<T>(s.lr, s.loss_scale)};
          detail::momentum_into(static_cast<T>(opt_.momentum), std::span<const T>(momentum_), g,
                                detail::unscale_factor<T>(1.0, s.loss_scale), std::span<T>(next_momentum_));
          return {next_momentum_, static_cast<T>(s.lr)};
        });
    if (round_.finish(*comm_, policy, std::span<T>(mean_), where) == step_status::skipped) {
      ++skipped_;
      return step_status::skipped;
    }
    // Commit (nothing below throws).
    if (!opt_.error_feedback) round_.clear_error();
    if (local_momentum) std::swap(momentum_, next_momentum_);
    std::span<const T> update = mean_;
    if constexpr (detail::is_ef21<C>) {
      detail::add_to(std::span<T>(estimate_), std::span<const T>(mean_));  // H += mean_j decode(m_j)
      update = estimate_;
    }
    if (opt_.mode == momentum_mode::on_aggregate && !momentum_.empty()) {
      detail::momentum_into(static_cast<T>(opt_.momentum), std::span<const T>(momentum_), update,
                            std::span<T>(momentum_));
      detail::subtract(x, std::span<const T>(momentum_));
    } else {
      detail::subtract(x, update);
    }
    return step_status::applied;
  }

  std::size_t dim() const noexcept { return round_.dim(); }
  const Comm& communicator() const noexcept { return *comm_; }
  const sgd_options& options() const noexcept { return opt_; }
  /// This worker's error feedback (residual e_i, metrics, the compressor).
  const error_feedback<C, T>& feedback() const noexcept { return round_.feedback(); }
  /// The last update before momentum: mean over ranks of decode(m_j).
  std::span<const T> last_mean() const noexcept { return mean_; }
  /// EF21: the receivers' estimate H = mean over ranks of the workers' estimates (empty for
  /// other compressors).
  std::span<const T> estimate() const noexcept { return estimate_; }
  /// The momentum buffer (empty without momentum).
  std::span<const T> momentum() const noexcept { return momentum_; }
  /// This worker's bytes: uplink = wire_bytes(m_i); downlink = the other ranks' messages
  /// (allreduce class: the message's values each way, the allreduce's payload).
  const traffic_log& bytes() const noexcept { return round_.bytes(); }
  /// Steps skipped because some rank's gradient held NaN or Inf.
  std::uint64_t skipped_steps() const noexcept { return skipped_; }

 private:
  Comm* comm_;
  detail::feedback_round<C, Comm, T> round_;
  sgd_options opt_;
  std::vector<T> mean_;           // mean over ranks of decode(m_j)
  std::vector<T> momentum_;       // v (on_aggregate: of the mean; in_update: of g)
  std::vector<T> next_momentum_;  // in_update: the new v, committed once the step succeeds
  std::vector<T> estimate_;       // EF21: H (empty otherwise)
  std::uint64_t skipped_ = 0;
};

}  // namespace gradcomp
