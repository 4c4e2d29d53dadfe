#pragma once
// gc::liec_sgd: LIEC-SGD, local immediate error compensation. One step with gradient g_i
// on worker i (g_i holds S times the gradient u_i, S the loss scale; u_i = g_i when S = 1)
// and learning rate lr:
//     worker:  c_i = C(u_i);   r_i = u_i - decode(c_i)      (kept for this step only)
//     server:  v = mean_i decode(c_i) + e_s;   M = C_s(v);   e_s = v - decode(M)
//     worker:  x_i -= lr * (decode(M) + r_i)
// The worker's compression error is compensated at once in its own step, not accumulated,
// so the local models drift apart; every H steps (sync_every) a step is uncompressed
// instead: the models are averaged and
//     x_i = mean_j x_j - lr * (mean_j g_j + e_s);   e_s = 0.
// The server is one rank or sharded over all ranks (server.hpp). Everything is in gradient
// units: the server's residual e_s is gradient not yet applied, and it is applied with the
// lr of the step that sends it (under a schedule, not the lr of the step that produced it).
// Invariant (exact up to rounding, for a constant lr): mean_i x_i - lr * e_s moves like SGD
// on the mean gradient.
//
// A step that fails anywhere throws the same gc::error on every rank and changes nothing.
// A step in which any rank's gradient holds NaN or Inf is skipped on every rank
// (step_status::skipped), changing nothing; it does not count toward sync_every.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "../comm/collectives.hpp"
#include "../comm/communicator.hpp"
#include "../compress.hpp"
#include "../concepts.hpp"
#include "../detail/strict_fp.hpp"
#include "../error.hpp"
#include "../execution.hpp"
#include "../feedback/error_feedback.hpp"
#include "exchange.hpp"
#include "server.hpp"
#include "sgd.hpp"
#include "traffic.hpp"

namespace gradcomp {

struct liec_options {
  double lr = 0.1;                // the step size (> 0, finite)
  std::uint64_t sync_every = 0;   // H: every H-th step is an uncompressed averaging step (0: never)
  server_options server{};
};

namespace detail {

/// x -= lr * (u + r)  (three roundings: u + r, the product, the difference).
template <class T>
GRADCOMP_NO_FP_CONTRACT void liec_update(std::span<T> x, T lr, std::span<const T> u, std::span<const T> r) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t i = 0; i < x.size(); ++i) x[i] -= lr * (u[i] + r[i]);
}

/// x = mean_x - lr * (mean_g + e)
template <class T>
GRADCOMP_NO_FP_CONTRACT void liec_sync(std::span<T> x, T lr, std::span<const T> mean_x, std::span<const T> mean_g,
                                       std::span<const T> e) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = mean_x[i] - lr * (mean_g[i] + e[i]);
}

}  // namespace detail

template <class C, comm::communicator Comm, std::floating_point T = float, class ServerC = C>
  requires compressor<C, T> && compressor<ServerC, T>
class liec_sgd {
 public:
  using worker_payload = payload_t<C, T>;
  using server_payload = payload_t<ServerC, T>;

  /// A worker (and, on serving ranks, a server) for vectors of dimension dim. A collective.
  liec_sgd(C c, ServerC server_c, Comm& comm, std::size_t dim, liec_options opt = {})
      : comm_(&comm), opt_(opt), layout_(detail::make_server_layout(opt.server, comm.size(), dim)), update_(dim),
        residual_(dim) {
    detail::check_bidirectional_setup(comm, opt.lr, opt.server, dim, "liec_sgd");
    comm::agree_on(comm, opt.sync_every, "liec_sgd", "sync_every");
    workers_.assign(static_cast<std::size_t>(layout_.shards()), c);
    messages_.resize(workers_.size());
    // Double-buffered: a step that fails or is skipped on another rank is undone.
    if (const int s = layout_.served_by(comm.rank()); s >= 0)
      server_.emplace_back(std::move(server_c), layout_.shard(s).size(), feedback_storage::double_buffered);
  }

  /// The same compressor on both sides.
  liec_sgd(C c, Comm& comm, std::size_t dim, liec_options opt = {})
    requires std::same_as<C, ServerC>
      : liec_sgd(c, c, comm, dim, opt) {}

  /// One step with the options' lr and no loss scale. A collective.
  template <execution_policy Policy>
  step_status step(const Policy& policy, std::span<T> x, std::span<const T> g) {
    return step(policy, x, g, {.lr = opt_.lr, .loss_scale = 1.0});
  }

  /// One step on this rank's replica x with this worker's gradient g, this step's lr and
  /// loss scale. A collective. Returns skipped, having changed nothing, if any rank's g held
  /// NaN or Inf.
  template <execution_policy Policy>
  step_status step(const Policy& policy, std::span<T> x, std::span<const T> g, const step_options& s) {
    const step_status status = opt_.sync_every != 0 && (steps_ + 1) % opt_.sync_every == 0
                                   ? sync_step(policy, x, g, s)
                                   : compressed_step(policy, x, g, s);
    if (status == step_status::skipped)
      ++skipped_;
    else
      ++steps_;
    return status;
  }

  std::size_t dim() const noexcept { return update_.size(); }
  /// Steps applied (compressed and synchronising; skipped steps do not count).
  std::uint64_t steps() const noexcept { return steps_; }
  const server_layout& layout() const noexcept { return layout_; }
  bool serves() const noexcept { return !server_.empty(); }
  /// The server's error feedback on this rank (residual e_s of the shard it serves).
  const error_feedback<ServerC, T>& server() const {
    if (server_.empty()) detail::fail("liec_sgd::server", "rank ", comm_->rank(), " serves no shard");
    return server_.front();
  }
  /// The worker's compressor for shard s (its step advances on seeded compressors).
  const C& worker_compressor(int s = 0) const { return workers_.at(static_cast<std::size_t>(s)); }
  /// r_i of the last compressed step: g_i - decode(c_i).
  std::span<const T> last_residual() const noexcept { return residual_; }
  /// decode(M) of the last compressed step.
  std::span<const T> last_update() const noexcept { return update_; }
  const traffic_log& bytes() const noexcept { return traffic_; }
  /// Steps skipped because some rank's gradient held NaN or Inf.
  std::uint64_t skipped_steps() const noexcept { return skipped_; }

 private:
  template <class Policy>
  step_status compressed_step(const Policy& policy, std::span<T> x, std::span<const T> g, const step_options& opt) {
    const char* where = "liec_sgd::step";
    std::vector<std::uint64_t> steps_before(workers_.size());
    const T unscale = detail::unscale_factor<T>(1.0, opt.loss_scale);
    const detail::round_outcome out = detail::two_way_step<worker_payload>(
        *comm_, policy, layout_, server_, buffers_, std::span<const T>(x), g, std::span<T>(update_),
        [&] {
          detail::check_step_options(opt, where);
          if (unscale != T(1) && sync_buffer_.size() < dim()) sync_buffer_.resize(dim());
        },
        [&](std::size_t s, std::span<const T> g_s, std::vector<std::byte>& frame) {
          if constexpr (seeded_compressor<C>) steps_before[s] = workers_[s].step;
          // u = g / S: compressed as it is when S = 1, else formed first in the sync steps'
          // scratch (r_i's buffer must keep the last step's r_i if this step fails).
          std::span<const T> u_s = g_s;
          if (unscale != T(1)) {
            const comm::index_range range = layout_.shard(static_cast<int>(s));
            const std::span<T> into = std::span<T>(sync_buffer_).subspan(range.begin, range.size());
            detail::scale_into(unscale, g_s, into);
            u_s = into;
          }
          gradcomp::compress(policy, workers_[s], u_s, messages_[s]);
          detail::ok_frame(messages_[s], frame);
        },
        [&](std::size_t compressed) {
          if constexpr (seeded_compressor<C>)
            for (std::size_t s = 0; s < compressed; ++s) workers_[s].step = steps_before[s];
        },
        where);
    if (out.status == step_status::skipped) return step_status::skipped;
    // r_i = u_i - decode(c_i), then x -= lr * (decode(M) + r_i). Nothing here throws: the
    // messages were encoded and decoded fine above.
    detail::scale_into(unscale, g, std::span<T>(residual_));
    for (std::size_t s = 0; s < workers_.size(); ++s) {
      const comm::index_range range = layout_.shard(static_cast<int>(s));
      gradcomp::decompress_add(policy, messages_[s], std::span<T>(residual_).subspan(range.begin, range.size()), T(-1));
    }
    detail::liec_update(x, static_cast<T>(opt.lr), std::span<const T>(update_), std::span<const T>(residual_));
    traffic_.record(out.bytes);
    return step_status::applied;
  }

  /// The uncompressed step: average [x, g / S] over ranks, gather e_s, set x and clear e_s.
  template <class Policy>
  step_status sync_step(const Policy& policy, std::span<T> x, std::span<const T> g, const step_options& opt) {
    const char* where = "liec_sgd::step";
    // Sizes first, through a frame exchange, so that a bad length fails on every rank (and
    // a non-finite gradient skips the step on every rank).
    std::vector<std::byte> frame;
    detail::attempt(frame, [&](std::vector<std::byte>& f) {
      detail::check_step_options(opt, where);
      detail::check_length(where, "x", x.size(), dim());
      detail::check_length(where, "the gradient", g.size(), dim());
      if (detail::all_finite(policy, g))
        detail::empty_ok_frame(f);
      else
        detail::skipped_frame(f);
    });
    comm::gathered_bytes status;
    comm::allgatherv(*comm_, frame, status);
    detail::throw_if_any_failed(status, where);
    if (detail::any_skipped(status)) return step_status::skipped;

    const std::size_t d = dim();
    std::vector<T>& both = sync_buffer_;  // [x, g / S], then their means
    both.resize(2 * d);
    std::copy(x.begin(), x.end(), both.begin());
    detail::scale_into(detail::unscale_factor<T>(1.0, opt.loss_scale), g, std::span<T>(both).subspan(d, d));
    comm::allreduce_sum(*comm_, std::span<T>(both));
    detail::divide_by(std::span<T>(both), comm_->size());

    // e_s, whole, on every rank.
    std::vector<T>& server_error = server_error_;
    server_error.resize(d);
    traffic t{.uplink = 2 * d * sizeof(T), .downlink = 2 * d * sizeof(T)};
    const int me = comm_->rank();
    if (layout_.mode == server_mode::single) {
      std::vector<std::byte> bytes;
      if (me == layout_.root) {
        const auto e = server_.front().error();
        bytes.resize(e.size_bytes());
        std::memcpy(bytes.data(), e.data(), e.size_bytes());
      }
      comm::broadcast(*comm_, bytes, layout_.root);
      std::memcpy(server_error.data(), bytes.data(), d * sizeof(T));
      if (me != layout_.root) t.downlink += d * sizeof(T);
    } else {
      const auto e = server_.front().error();
      comm::gathered_bytes all;
      comm::allgatherv(*comm_, std::as_bytes(e), all);
      std::memcpy(server_error.data(), all.data.data(), d * sizeof(T));
      t.downlink += (d - e.size()) * sizeof(T);
    }
    const std::span<const T> mean(both);
    detail::liec_sync(x, static_cast<T>(opt.lr), mean.first(d), mean.subspan(d, d), std::span<const T>(server_error));
    if (!server_.empty()) server_.front().clear_error();
    traffic_.record(t);
    return step_status::applied;
  }

  Comm* comm_;
  liec_options opt_;
  server_layout layout_;
  std::vector<C> workers_;                          // one compressor per shard
  std::vector<worker_payload> messages_;            // c_i per shard
  std::vector<error_feedback<ServerC, T>> server_;  // the shard this rank serves, if any
  std::vector<T> update_;
  detail::round_buffers<T, worker_payload, server_payload> buffers_;
  std::vector<T> sync_buffer_;   // sync steps: [x, g / S] and their means; scaled steps: g / S
  std::vector<T> server_error_;  // sync steps: e_s, whole
  std::vector<T> residual_;
  std::uint64_t steps_ = 0;
  std::uint64_t skipped_ = 0;
  traffic_log traffic_;
};

}  // namespace gradcomp
