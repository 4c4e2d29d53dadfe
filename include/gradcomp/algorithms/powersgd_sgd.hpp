#pragma once
// gc::powersgd_sgd: distributed SGD with PowerSGD's low-rank compression and error feedback
// (lowrank/powersgd.hpp), over any communicator. Every rank is a worker holding a model
// replica x (the tensors of `shapes`, concatenated, row-major); one step with gradient g_i
// (S times the gradient, S the loss scale) and learning rate lr is
//     M_i = e_i + (lr / S) g_i, then PowerSGD's two all-reduces (P, then Q), then
//     x -= decoded          (decoded = P Q^T on compressed tensors, the mean elsewhere)
// decoded is the same on every rank, so replicas that start equal stay equal. The residual
// e_i is in parameter units (lr times gradients), as in ef_sgd.
//
// The exchange: both all-reduces are the communicator's allreduce_sum (added in rank order,
// so every rank gets the same bits), divided by the number of ranks (one rounding). Before
// them, one small allgatherv of a status frame (algorithms/exchange.hpp): a rank whose local
// part fails (a gradient of the wrong length, a bad lr, M = e + lr g overflowing) still takes
// part and sends its error message, and every rank throws "powersgd_sgd::step: rank r
// failed: <message>"; if some rank's gradient holds NaN or Inf, every rank skips the step
// (step_status::skipped). After the status frame nothing local can fail: the all-reduced P
// and Q are the same on every rank, so a check on them (finite) throws alike everywhere, as
// does a communicator error. A failed or skipped step changes nothing on any rank (the state
// commits only after the last check).
//
// Bytes per step and rank (traffic.hpp): uplink = downlink = sizeof(T) times (the
// uncompressed tensors' values + every P + every Q), the all-reduces' payload; the status
// frame is framing and not counted.
//
// No per-step error bound (docs/powersgd.md): not contractive, absolute or unbiased.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "../comm/collectives.hpp"
#include "../comm/communicator.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../lowrank/powersgd.hpp"
#include "../lowrank/shapes.hpp"
#include "exchange.hpp"
#include "sgd.hpp"
#include "traffic.hpp"

namespace gradcomp {

struct powersgd_sgd_options {
  double lr = 0.1;           // the step size (> 0, finite)
  std::size_t rank = 2;      // PowerSGD's r (>= 1)
  std::uint64_t seed = 0;    // Q's initial draw; every rank must pass the same
};

template <comm::communicator Comm, std::floating_point T = float>
class powersgd_sgd {
 public:
  /// A worker on this rank for a model of these tensor shapes. A collective: every rank
  /// checks its options, then the ranks agree on the shapes, the rank and the seed (else the
  /// same gc::error on every rank).
  powersgd_sgd(Comm& comm, std::span<const tensor_shape> shapes, powersgd_sgd_options opt = {})
      : comm_(&comm), opt_(opt), state_(checked_state(comm, shapes, opt)), decoded_(state_.dim()) {}

  /// One step with the options' lr and no loss scale. A collective.
  template <execution_policy Policy>
  step_status step(const Policy& policy, std::span<T> x, std::span<const T> g) {
    return step(policy, x, g, {.lr = opt_.lr, .loss_scale = 1.0});
  }

  /// One step with this step's lr and loss scale (see the header comment). A collective.
  template <execution_policy Policy>
  step_status step(const Policy& policy, std::span<T> x, std::span<const T> g, const step_options& s) {
    const char* where = "powersgd_sgd::step";
    std::vector<std::byte> frame;
    detail::attempt(frame, [&](std::vector<std::byte>& f) {
      detail::check_length(where, "x", x.size(), dim());
      detail::check_step_options(s, where);
      detail::check_length(where, "the gradient", g.size(), dim());
      if (!detail::all_finite(policy, g)) return detail::skipped_frame(f);
      state_.prepare(policy, g, detail::unscale_factor<T>(s.lr, s.loss_scale), decoded_.size(), where);
      detail::empty_ok_frame(f);
    });
    comm::allgatherv(*comm_, frame, statuses_);
    detail::throw_if_any_failed(statuses_, where);
    if (detail::any_skipped(statuses_)) {
      ++skipped_;
      return step_status::skipped;
    }
    const int ranks = comm_->size();
    state_.finish(
        policy, std::span<T>(decoded_),
        [&](std::span<T> values) {
          comm::allreduce_sum(*comm_, values);
          detail::divide_by(values, ranks);
        },
        where);
    detail::subtract(x, std::span<const T>(decoded_));
    const std::uint64_t bytes = state_.values_per_step() * sizeof(T);
    bytes_.record({.uplink = bytes, .downlink = bytes});
    return step_status::applied;
  }

  std::size_t dim() const noexcept { return state_.dim(); }
  const Comm& communicator() const noexcept { return *comm_; }
  const powersgd_sgd_options& options() const noexcept { return opt_; }
  /// This worker's PowerSGD state (residuals, Q's, the last P's).
  const powersgd<T>& compression() const noexcept { return state_; }
  powersgd<T>& compression() noexcept { return state_; }
  /// The last update applied: x -= last_update() (the same on every rank).
  std::span<const T> last_update() const noexcept { return decoded_; }
  const traffic_log& bytes() const noexcept { return bytes_; }
  std::uint64_t skipped_steps() const noexcept { return skipped_; }

 private:
  static powersgd<T> checked_state(Comm& comm, std::span<const tensor_shape> shapes, const powersgd_sgd_options& opt) {
    const char* where = "powersgd_sgd";
    std::optional<powersgd<T>> state;
    detail::check_on_every_rank(comm, where, [&] {
      detail::check_sgd_options({.lr = opt.lr}, where);
      state.emplace(shapes, powersgd_options{.rank = opt.rank, .seed = opt.seed});
    });
    comm::agree_on(comm, shapes.size(), where, "the number of tensors");
    comm::agree_on(comm, shapes_fingerprint(shapes), where, "the tensor shapes (a fingerprint)");
    comm::agree_on(comm, opt.rank, where, "the rank r");
    comm::agree_on(comm, opt.seed, where, "the seed");
    return std::move(*state);
  }

  /// FNV-1a over every (rows, cols): equal shape lists give equal values.
  static std::uint64_t shapes_fingerprint(std::span<const tensor_shape> shapes) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const tensor_shape s : shapes)
      for (const std::uint64_t v : {static_cast<std::uint64_t>(s.rows), static_cast<std::uint64_t>(s.cols)})
        for (int b = 0; b < 8; ++b) h = (h ^ ((v >> (8 * b)) & 0xff)) * 0x100000001b3ULL;
    return h;
  }

  Comm* comm_;
  powersgd_sgd_options opt_;
  powersgd<T> state_;
  std::vector<T> decoded_;           // this step's update, the same on every rank
  comm::gathered_bytes statuses_;    // every rank's status frame
  traffic_log bytes_;
  std::uint64_t skipped_ = 0;
};

}  // namespace gradcomp
