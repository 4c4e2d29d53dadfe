#pragma once
// gc::ef_sgd: distributed SGD with error feedback (the hard-threshold paper's Algorithm 1),
// over any compressor and any communicator. Every rank is a worker holding a model replica
// x; one step on worker i with gradient g_i is
//     p_i = e_i + lr * u_i;   m_i = C(p_i);   e_i = p_i - decode(m_i)
//     x  -= update(mean over ranks of decode(m_j))
// with, for momentum beta (momentum_mode):
//   on_aggregate (gradient compression, the paper's default): u_i = g_i, and the mean of the
//     decoded messages a = mean_j decode(m_j) feeds one momentum v = beta * v + a, x -= v;
//   in_update (update compression): u_i = v_i = beta * v_i + g_i, the local momentum is
//     what gets compressed, and x -= a.
// With beta = 0 both are plain EF-SGD. Replicas that start equal stay equal.
//
// Messages are exchanged with allgatherv (their sizes differ between ranks and steps) and
// summed in rank order. A seeded_sparse payload (random-k: the same indices on every rank)
// is instead aggregated with an allreduce of its k values only, after checking that every
// rank used the same (seed, step, k).
//
// A step that fails on any rank (a bad gradient, a compressor error, a mismatched size)
// throws the same gc::error on every rank and changes nothing: ranks that had compressed
// take their error-feedback step back (error_feedback::undo).
#include <algorithm>
#include <array>
#include <cmath>
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
      : comm_(&comm), feedback_(std::move(c), dim), opt_(opt), mean_(dim), momentum_(opt.momentum != 0.0 ? dim : 0),
        next_momentum_(momentum_.size()) {
    detail::check_on_every_rank(comm, "ef_sgd", [&] { detail::check_sgd_options(opt, "ef_sgd"); });
    comm::agree_on(comm, dim, "ef_sgd", "the dimension");
  }

  /// One step: compresses this worker's gradient g (with its residual), exchanges the
  /// messages, and applies the update to this rank's replica x. A collective.
  template <execution_policy Policy>
  void step(const Policy& policy, std::span<T> x, std::span<const T> g) {
    const char* where = "ef_sgd::step";
    const T lr = static_cast<T>(opt_.lr);
    const bool local_momentum = opt_.mode == momentum_mode::in_update && !momentum_.empty();
    bool compressed = false;
    const bool ok = detail::attempt(frame_, [&](std::vector<std::byte>& frame) {
      detail::check_length(where, "x", x.size(), dim());
      detail::check_length(where, "the gradient", g.size(), dim());
      std::span<const T> input = g;
      if (local_momentum) {
        detail::momentum_into(static_cast<T>(opt_.momentum), std::span<const T>(momentum_), g,
                              std::span<T>(next_momentum_));
        input = next_momentum_;
      }
      const payload_type& m = feedback_.compress(policy, input, lr);
      compressed = true;
      if constexpr (detail::is_seeded_sparse_v<payload_type>)
        seeded_header(m, frame);
      else
        detail::ok_frame(m, frame);
    });
    (void)ok;
    traffic t;
    try {
      comm_->allgatherv(frame_, frames_);
      detail::throw_if_any_failed(frames_, where);
      if constexpr (detail::is_seeded_sparse_v<payload_type>)
        t = mean_of_seeded(policy, frames_);
      else
        t = mean_of_messages(policy, frames_);
    } catch (...) {
      if (compressed) feedback_.undo();
      throw;
    }
    // Commit (nothing below throws).
    if (local_momentum) std::swap(momentum_, next_momentum_);
    if (opt_.mode == momentum_mode::on_aggregate && !momentum_.empty()) {
      detail::momentum_into(static_cast<T>(opt_.momentum), std::span<const T>(momentum_), std::span<const T>(mean_),
                            std::span<T>(momentum_));
      detail::subtract(x, std::span<const T>(momentum_));
    } else {
      detail::subtract(x, std::span<const T>(mean_));
    }
    traffic_.record(t);
  }

  std::size_t dim() const noexcept { return feedback_.dim(); }
  const Comm& communicator() const noexcept { return *comm_; }
  const sgd_options& options() const noexcept { return opt_; }
  /// This worker's error feedback (residual e_i, metrics, the compressor).
  const error_feedback<C, T>& feedback() const noexcept { return feedback_; }
  /// The last update before momentum: mean over ranks of decode(m_j).
  std::span<const T> last_mean() const noexcept { return mean_; }
  /// The momentum buffer (empty without momentum).
  std::span<const T> momentum() const noexcept { return momentum_; }
  /// This worker's bytes: uplink = wire_bytes(m_i); downlink = the other ranks' messages
  /// (for random-k: k values each way, the allreduce's payload).
  const traffic_log& bytes() const noexcept { return traffic_; }

 private:
  /// random-k: the frame carries (seed, step, k) only; the values go through an allreduce.
  static void seeded_header(const payload_type& m, std::vector<std::byte>& frame) {
    const std::uint64_t fields[4] = {m.seed, m.step, m.values.size(), m.dim};
    frame.resize(1 + sizeof(fields));
    frame[0] = static_cast<std::byte>(detail::frame_status::ok);
    std::memcpy(frame.data() + 1, fields, sizeof(fields));
  }

  template <class Policy>
  traffic mean_of_messages(const Policy& policy, const comm::gathered_bytes& frames) {
    detail::mean_of_frames(policy, frames, std::span<T>(mean_), scratch_);
    traffic t;
    for (int r = 0; r < frames.ranks(); ++r) {
      const std::size_t bytes = detail::frame_body(frames.from(r)).size();
      (r == comm_->rank() ? t.uplink : t.downlink) += bytes;
    }
    return t;
  }

  template <class Policy>
  traffic mean_of_seeded(const Policy& policy, const comm::gathered_bytes& frames) {
    const char* where = "ef_sgd::step";
    const auto fields_of = [&](int r) {
      std::uint64_t f[4];
      std::memcpy(f, detail::frame_body(frames.from(r)).data(), sizeof(f));
      return std::to_array(f);
    };
    const auto first = fields_of(0);
    for (int r = 1; r < frames.ranks(); ++r)
      if (fields_of(r) != first)
        detail::fail(where, "random-k messages differ across ranks: rank 0 has (seed ", first[0], ", step ", first[1],
                     ", k ", first[2], ", dim ", first[3], "), rank ", r, " has (seed ", fields_of(r)[0], ", step ",
                     fields_of(r)[1], ", k ", fields_of(r)[2], ", dim ", fields_of(r)[3],
                     "): every worker must construct random_k with the same seed");
    const payload_type& m = feedback_.message();
    values_.assign(m.values.begin(), m.values.end());
    comm::allreduce_sum(*comm_, std::span<T>(values_));
    detail::divide_by(std::span<T>(values_), comm_->size());
    std::fill(mean_.begin(), mean_.end(), T(0));
    scratch_.dim = m.dim;
    scratch_.seed = m.seed;
    scratch_.step = m.step;
    scratch_.indices = m.indices;
    std::swap(scratch_.values, values_);
    gradcomp::decompress_add(policy, scratch_, std::span<T>(mean_));
    std::swap(scratch_.values, values_);
    const std::uint64_t bytes = m.values.size() * sizeof(T);
    return {.uplink = bytes, .downlink = bytes};
  }

  Comm* comm_;
  error_feedback<C, T> feedback_;
  sgd_options opt_;
  std::vector<T> mean_;           // mean over ranks of decode(m_j)
  std::vector<T> momentum_;       // v (on_aggregate: of the mean; in_update: of g)
  std::vector<T> next_momentum_;  // in_update: the new v, committed once the step succeeds
  std::vector<T> values_;         // random-k: the summed values
  std::vector<std::byte> frame_;   // this rank's frame
  comm::gathered_bytes frames_;    // every rank's frame
  payload_type scratch_;
  traffic_log traffic_;
};

}  // namespace gradcomp
