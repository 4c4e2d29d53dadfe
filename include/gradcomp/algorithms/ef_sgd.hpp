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
//
// Over a sparsifier, sgd_options::exchange can replace the all-gather by a sparse
// reduce-scatter or recursive doubling that keeps the global Top-k of the messages' sum
// (sparse_exchange.hpp): the entries a rank sent that the global selection dropped go back
// to its residual.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
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
#include "sparse_exchange.hpp"
#include "sgd.hpp"
#include "traffic.hpp"

namespace gradcomp {

namespace detail {

template <class P>
inline constexpr bool is_sparse_vector = false;
template <class T, class I>
inline constexpr bool is_sparse_vector<sparse_vector<T, I>> = true;

/// The k of a sparse exchange's global selection: the option's, else the compressor's k.
template <class C, class T>
std::size_t global_k_of(const C& c, const exchange_options& o, const char* where) {
  if (o.kind != exchange_kind::allgather && o.kind != exchange_kind::reduce_scatter &&
      o.kind != exchange_kind::recursive_doubling)
    fail(where, "exchange_options::kind ", static_cast<int>(o.kind), " is not an exchange_kind");
  if (o.balance != region_balance::previous_selection && o.balance != region_balance::equal)
    fail(where, "exchange_options::balance ", static_cast<int>(o.balance), " is not a region_balance");
  if (o.kind == exchange_kind::allgather) return 0;
  if constexpr (is_ef21<C>) {
    fail(where, "the ", exchange_name(o.kind), " exchange drops entries that EF21's estimates assume were received: "
                "use the allgather exchange with ef21");
  } else if constexpr (!is_sparse_vector<payload_t<C, T>>) {
    fail(where, "the ", exchange_name(o.kind), " exchange adds sparse messages: it needs a sparsifier whose message "
                "is a sparse_vector (top_k, hard_threshold, ...), not ", compressor_name<C>());
  } else {
    if (o.global_k != 0) return o.global_k;
    if constexpr (requires { c.k; }) {
      if (c.k == 0) fail(where, "the compressor's k is 0");
      return static_cast<std::size_t>(c.k);
    } else {
      fail(where, "set exchange_options::global_k (the k of the global Top-k): ", compressor_name<C>(),
           " has no k to take it from");
    }
  }
}

}  // namespace detail

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
    std::size_t global_k = 0;
    detail::check_on_every_rank(comm, "ef_sgd", [&] {
      detail::check_sgd_options(opt, "ef_sgd");
      global_k = detail::global_k_of<C, T>(round_.feedback().base(), opt.exchange, "ef_sgd");
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
    comm::agree_on(comm, static_cast<std::uint64_t>(opt.exchange.kind), "ef_sgd", "the exchange kind");
    if (opt.exchange.kind != exchange_kind::allgather) {
      comm::agree_on(comm, global_k, "ef_sgd", "the global k");
      comm::agree_on(comm, static_cast<std::uint64_t>(opt.exchange.balance), "ef_sgd", "the region balance");
      sparse_.emplace(opt.exchange, dim, global_k);
    }
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
    const auto validate = [&] {
      detail::check_length(where, "x", x.size(), dim());
      detail::check_step_options(s, where);
    };
    const auto prepare = [&]() -> std::pair<std::span<const T>, T> {
      if (!local_momentum) return {g, detail::unscale_factor<T>(s.lr, s.loss_scale)};
      detail::momentum_into(static_cast<T>(opt_.momentum), std::span<const T>(momentum_), g,
                            detail::unscale_factor<T>(1.0, s.loss_scale), std::span<T>(next_momentum_));
      return {next_momentum_, static_cast<T>(s.lr)};
    };
    step_status outcome;
    if (sparse_) {
      outcome = sparse_step(policy, g, where, validate, prepare);
    } else {
      round_.start(*comm_, policy, 0, g, where, validate, prepare);
      outcome = round_.finish(*comm_, policy, std::span<T>(mean_), where);
    }
    if (outcome == step_status::skipped) {
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
  /// (allreduce class: the message's values each way, the allreduce's payload; a sparse
  /// exchange: the blocks and histograms it sent and received, exchange_messages()).
  const traffic_log& bytes() const noexcept { return round_.bytes(); }
  /// Steps skipped because some rank's gradient held NaN or Inf.
  std::uint64_t skipped_steps() const noexcept { return skipped_; }
  /// The exchange's options (allgather unless sgd_options::exchange chose a sparse one).
  const exchange_options& exchange() const noexcept { return opt_.exchange; }
  /// Sparse exchanges: the last applied step's messages, as bytes() counts them (empty for
  /// the allgather), its global selection S and the reduce-scatter's region starts.
  std::span<const exchange_message> exchange_messages() const noexcept {
    return sparse_ ? sparse_->messages() : std::span<const exchange_message>();
  }
  std::span<const std::size_t> last_selection() const noexcept {
    return sparse_ ? sparse_->selection() : std::span<const std::size_t>();
  }
  std::span<const std::size_t> regions() const noexcept {
    return sparse_ ? sparse_->regions() : std::span<const std::size_t>();
  }

 private:
  /// A sparse exchange's step: compress here, run the exchange's protocol, return what the
  /// global selection dropped to the residual.
  template <class Policy, class Validate, class Prepare>
  step_status sparse_step(const Policy& policy, std::span<const T> g, const char* where, Validate&& validate,
                          Prepare&& prepare) {
    if constexpr (detail::is_sparse_vector<payload_type>) {
      std::string error;
      const detail::frame_status status = round_.compress_only(policy, g, where, validate, prepare, error);
      step_status outcome = step_status::skipped;
      try {
        outcome = sparse_->run(*comm_, status, error, round_.feedback().message(), std::span<T>(mean_), where);
        if (outcome == step_status::applied)
          round_.feedback().return_unsent(sparse_->unsent_indices(), sparse_->unsent_values());
      } catch (...) {
        round_.abandon();
        throw;
      }
      if (outcome == step_status::skipped) {
        round_.abandon();
        return outcome;
      }
      round_.applied(sparse_->last_traffic());
      return outcome;
    } else {
      detail::fail(where, "a sparse exchange needs a sparsifier");  // the constructor refused it already
    }
  }

  Comm* comm_;
  detail::feedback_round<C, Comm, T> round_;
  sgd_options opt_;
  std::vector<T> mean_;           // mean over ranks of decode(m_j)
  std::vector<T> momentum_;       // v (on_aggregate: of the mean; in_update: of g)
  std::vector<T> next_momentum_;  // in_update: the new v, committed once the step succeeds
  std::vector<T> estimate_;       // EF21: H (empty otherwise)
  std::optional<detail::sparse_exchange<T>> sparse_;  // unless the exchange is the allgather
  std::uint64_t skipped_ = 0;
};

}  // namespace gradcomp
