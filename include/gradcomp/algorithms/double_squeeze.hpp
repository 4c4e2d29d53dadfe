#pragma once
// gc::double_squeeze: DoubleSqueeze (Tang et al. 2019), error-compensated compression in
// both directions. One step with gradient g_i on worker i (holding S times the gradient, S
// the loss scale) and learning rate lr:
//     worker:  p_i = e_i + (lr / S) * g_i;   m_i = C(p_i);   e_i = p_i - decode(m_i)
//     server:  v = mean_i decode(m_i) + e_s;   M = C_s(v);   e_s = v - decode(M)
//     worker:  x -= decode(M)
// Both sides are error_feedback adaptors (the server's with scale 1), so any compressor
// works on either side. The step is inside the compressed quantity, as in EF-SGD: both
// residuals are in parameter units (lr times gradients), and a compressor sees lr * g, so a
// threshold lambda acts as lambda / lr on the gradient. A change of lr applies to new
// gradients only. The server is one rank or sharded over all ranks (server.hpp).
// Invariant (exact up to rounding, for any lr schedule): x - mean_i e_i - e_s moves like
// SGD on the mean gradient, x' = x - lr_t * mean_i g_i / S_t.
//
// A step that fails anywhere throws the same gc::error on every rank and changes nothing:
// every error feedback that had stepped is undone. A step in which any rank's gradient
// holds NaN or Inf is skipped on every rank (step_status::skipped), changing nothing.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "../comm/communicator.hpp"
#include "../concepts.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../feedback/error_feedback.hpp"
#include "exchange.hpp"
#include "server.hpp"
#include "sgd.hpp"
#include "traffic.hpp"

namespace gradcomp {

struct double_squeeze_options {
  double lr = 0.1;  // the step size (> 0, finite)
  server_options server{};
};

template <class C, comm::communicator Comm, std::floating_point T = float, class ServerC = C>
  requires compressor<C, T> && compressor<ServerC, T>
class double_squeeze {
 public:
  using worker_payload = payload_t<C, T>;
  using server_payload = payload_t<ServerC, T>;

  /// A worker (and, on serving ranks, a server) for vectors of dimension dim, with
  /// compressor c on the workers and server_c on the server. A collective.
  double_squeeze(C c, ServerC server_c, Comm& comm, std::size_t dim, double_squeeze_options opt = {})
      : comm_(&comm), opt_(opt), layout_(detail::make_server_layout(opt.server, comm.size(), dim)), update_(dim) {
    detail::check_bidirectional_setup(comm, opt.lr, opt.server, dim, "double_squeeze");
    // Double-buffered: a step that fails or is skipped on another rank is undone.
    for (int s = 0; s < layout_.shards(); ++s)
      workers_.emplace_back(c, layout_.shard(s).size(), feedback_storage::double_buffered);
    if (const int s = layout_.served_by(comm.rank()); s >= 0)
      server_.emplace_back(std::move(server_c), layout_.shard(s).size(), feedback_storage::double_buffered);
  }

  /// The same compressor on both sides.
  double_squeeze(C c, Comm& comm, std::size_t dim, double_squeeze_options opt = {})
    requires std::same_as<C, ServerC>
      : double_squeeze(c, c, comm, dim, opt) {}

  /// One step with the options' lr and no loss scale. A collective.
  template <execution_policy Policy>
  step_status step(const Policy& policy, std::span<T> x, std::span<const T> g) {
    return step(policy, x, g, {.lr = opt_.lr, .loss_scale = 1.0});
  }

  /// One step with this step's lr and loss scale: compress g with this worker's residual, go
  /// through the server, and apply its decoded message to this rank's replica x. A
  /// collective. Returns skipped, having changed nothing, if any rank's g held NaN or Inf.
  template <execution_policy Policy>
  step_status step(const Policy& policy, std::span<T> x, std::span<const T> g, const step_options& s) {
    const char* where = "double_squeeze::step";
    const detail::round_outcome out = detail::two_way_step<worker_payload>(
        *comm_, policy, layout_, server_, buffers_, std::span<const T>(x), g, std::span<T>(update_),
        [&] { detail::check_step_options(s, where); },
        [&](std::size_t sh, std::span<const T> g_s, std::vector<std::byte>& frame) {
          detail::ok_frame(workers_[sh].compress(policy, g_s, detail::unscale_factor<T>(s.lr, s.loss_scale)), frame);
        },
        [&](std::size_t compressed) {
          for (std::size_t sh = 0; sh < compressed; ++sh) workers_[sh].undo();
        },
        where);
    if (out.status == step_status::skipped) {
      ++skipped_;
      return step_status::skipped;
    }
    detail::subtract(x, std::span<const T>(update_));
    traffic_.record(out.bytes);
    return step_status::applied;
  }

  std::size_t dim() const noexcept { return update_.size(); }
  const server_layout& layout() const noexcept { return layout_; }
  /// This worker's error feedback for shard s (one shard unless the server is sharded).
  const error_feedback<C, T>& worker(int s = 0) const { return workers_.at(static_cast<std::size_t>(s)); }
  /// The server's error feedback on this rank (its residual is e_s of the shard it serves).
  bool serves() const noexcept { return !server_.empty(); }
  const error_feedback<ServerC, T>& server() const {
    if (server_.empty()) detail::fail("double_squeeze::server", "rank ", comm_->rank(), " serves no shard");
    return server_.front();
  }
  /// The last update applied: decode of the server message(s).
  std::span<const T> last_update() const noexcept { return update_; }
  /// This worker's bytes per step (see server.hpp for what crosses the network).
  const traffic_log& bytes() const noexcept { return traffic_; }
  /// Steps skipped because some rank's gradient held NaN or Inf.
  std::uint64_t skipped_steps() const noexcept { return skipped_; }

 private:
  Comm* comm_;
  double_squeeze_options opt_;
  server_layout layout_;
  std::vector<error_feedback<C, T>> workers_;       // one per shard
  std::vector<error_feedback<ServerC, T>> server_;  // the shard this rank serves, if any
  std::vector<T> update_;
  detail::round_buffers<T, worker_payload, server_payload> buffers_;
  traffic_log traffic_;
  std::uint64_t skipped_ = 0;
};

}  // namespace gradcomp
