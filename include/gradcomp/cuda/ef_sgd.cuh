#pragma once
// gc::cuda::ef_sgd<C, DeviceComm, T>: gc::ef_sgd (algorithms/ef_sgd.hpp) with the model, the
// gradient, the residual, the messages, the mean and the momentum in device memory, over a
// device communicator (cuda/comm/device_communicator.cuh: gc::cuda::comm::thread_group,
// gc::nccl::communicator). docs/device-exchanges.md, "gc::cuda::ef_sgd".
//
// One step on rank i is the host scheme's, with the same bits:
//     p_i = e_i + lr * u_i;   m_i = C(p_i);   e_i = p_i - decode(m_i)      (cuda::error_feedback)
//     x  -= update(mean over ranks of decode(m_j))
// with the host's options (sgd_options: lr, momentum on_aggregate or in_update,
// error_feedback on or off, the exchange) and per-step settings (step_options: lr, loss
// scale). The update rules are the host's own functions (gc::detail::momentum_into, subtract,
// divide_by, GRADCOMP_HD), called per element by the kernels below.
//
// Exchanges:
//   allgather            every rank's message to every rank (allgatherv on the device), then
//                        decompress_add of every message in rank order from zero and the
//                        division by P, as gc::ef_sgd's all-gather. Top-k and hard-threshold
//                        messages (cuda::sparse_vector) travel as device bytes (values, then
//                        indices); the other gather-class device payloads (sign, quantizers,
//                        casts, ...) travel as their host encoding, staged through host memory
//                        (encode, allgatherv, decode, from_host: correct, not fast).
//   reduce_scatter,      gc::cuda::sparse_exchange (cuda/comm/sparse_exchange.cuh), then
//   recursive_doubling   error_feedback::return_unsent of the entries the global selection
//                        dropped; sparsifiers whose device message is a cuda::sparse_vector.
//
// Protocol (the host's): a step whose local part fails on any rank (a wrong length, bad step
// options, a compressor error, an overflow) throws the same gc::error on every rank,
// "<where>: rank r failed: <message>" with the lowest failing rank's message; a step in which
// any rank's gradient holds NaN or Inf is skipped on every rank (step_status::skipped). Either
// way nothing changes: residual, metrics, momentum, x, the mean, the byte counts. The ranks'
// statuses are exchanged (an allgather of small host frames) before any data moves.
//
// Refused, with the same gc::error on every rank, by the constructor: bad sgd_options, ranks
// that disagree on the dimension or the exchange, allreduce-class compressors (random_k,
// identity: the host sums them in compressed form, which this class does not do), a sparse
// exchange over a compressor whose device message is not a cuda::sparse_vector or without a
// global k. EF21 (ef21<C>) has no device error feedback and is refused at compile time.
//
// Streams: everything runs on comm.stream(). g must be complete with respect to it; x is
// updated on it when step() returns (read it after synchronising the stream). A step waits
// for the stream several times (the compressor's error check, the statuses, the sizes).
//
// Compiled (nvcc 13.0, sm_90); NOT YET RUN on a GPU (tests/cuda/test_cuda_ef_sgd.cu compares
// it with gc::ef_sgd over comm::local_group on 1 to 5 thread ranks).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../aggregation.hpp"
#include "../algorithms/ef_sgd.hpp"
#include "../algorithms/exchange.hpp"
#include "../algorithms/exchange_options.hpp"
#include "../algorithms/sgd.hpp"
#include "../algorithms/traffic.hpp"
#include "../comm/communicator.hpp"
#include "../compress.hpp"
#include "../concepts.hpp"
#include "../error.hpp"
#include "comm/device_communicator.cuh"
#include "comm/sparse_exchange.cuh"
#include "decompress.cuh"
#include "error.cuh"
#include "error_feedback.cuh"
#include "first_index.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "sparse_vector.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail::sgd {

template <class P>
inline constexpr bool is_device_sparse = false;
template <class T, class I>
inline constexpr bool is_device_sparse<cuda::sparse_vector<T, I>> = true;

// The host's update rules (algorithms/sgd.hpp, exchange.hpp), one element per call.

/// out = beta * v + s * g (gc::detail::momentum_into); out may be v.
template <class T>
__global__ void momentum_kernel(T beta, const T* v, const T* g, T s, T* out, std::size_t n) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads())
    gradcomp::detail::momentum_into(beta, std::span<const T>(v + i, 1), std::span<const T>(g + i, 1), s,
                                    std::span<T>(out + i, 1));
}

/// x -= u (gc::detail::subtract).
template <class T>
__global__ void subtract_kernel(T* x, const T* u, std::size_t n) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads())
    gradcomp::detail::subtract(std::span<T>(x + i, 1), std::span<const T>(u + i, 1));
}

/// v /= ranks (gc::detail::divide_by).
template <class T>
__global__ void divide_kernel(T* v, int ranks, std::size_t n) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads())
    gradcomp::detail::divide_by(std::span<T>(v + i, 1), ranks);
}

template <class T>
void momentum(cudaStream_t stream, T beta, const T* v, const T* g, T s, T* out, std::size_t n) {
  if (n == 0) return;
  momentum_kernel<T><<<elementwise_grid(n), tuning::elementwise::block_threads, 0, stream>>>(beta, v, g, s, out, n);
  check_launch("cuda::ef_sgd", "momentum_kernel");
}

template <class T>
void subtract(cudaStream_t stream, T* x, const T* u, std::size_t n) {
  if (n == 0) return;
  subtract_kernel<T><<<elementwise_grid(n), tuning::elementwise::block_threads, 0, stream>>>(x, u, n);
  check_launch("cuda::ef_sgd", "subtract_kernel");
}

template <class T>
void divide(cudaStream_t stream, T* v, int ranks, std::size_t n) {
  if (n == 0) return;
  divide_kernel<T><<<elementwise_grid(n), tuning::elementwise::block_threads, 0, stream>>>(v, ranks, n);
  check_launch("cuda::ef_sgd", "divide_kernel");
}

}  // namespace gradcomp::cuda::detail::sgd

namespace gradcomp::cuda {

template <class C, comm::device_communicator DeviceComm, std::floating_point T = float>
  requires compressor<C, T>
class ef_sgd {
 public:
  using compressor_type = C;
  using message_type = device_payload_t<C, T>;
  static constexpr bool sparse_message = detail::sgd::is_device_sparse<message_type>;
  static_assert(!gradcomp::detail::is_ef21<C>,
                "gc::cuda::ef_sgd: EF21 (ef21<C>) has no device error feedback; use gc::ef_sgd on the host");

  /// A worker of the scheme on this rank, for vectors of dimension dim (allocates about 3 to
  /// 5 dim values of device memory, plus the exchange's). A collective: every rank must pass
  /// the same dim and exchange; a bad or unsupported option on any rank throws the same
  /// gc::error on every rank (see the top of the file).
  ef_sgd(C c, DeviceComm& comm, std::size_t dim, sgd_options opt = {})
      : comm_(&comm),
        feedback_(c, dim),
        opt_(opt),
        mean_(dim),
        momentum_(opt.momentum != 0.0 ? dim : 0),
        next_momentum_(opt.mode == momentum_mode::in_update && opt.momentum != 0.0 ? dim : 0),
        zeros_(opt.error_feedback ? 0 : dim) {
    const char* where = "cuda::ef_sgd";
    // The buffers start at zero, as the host's vectors. On comm.stream(), which every later use
    // follows; the error feedback zeroed its residual with cudaMemset (the legacy default
    // stream, which a non-blocking stream does not wait for): wait for that here.
    for (device_buffer<T>* b : {&mean_, &momentum_, &next_momentum_, &zeros_})
      if (b->size() > 0)
        detail::check(cudaMemsetAsync(b->data(), 0, b->size() * sizeof(T), comm.stream()), where, "cudaMemsetAsync");
    detail::check(cudaStreamSynchronize(cudaStreamLegacy), where, "cudaStreamSynchronize (legacy stream)");
    std::size_t global_k = 0;
    check_on_every_rank(where, [&] {
      gradcomp::detail::check_sgd_options(opt, where);
      global_k = gradcomp::detail::global_k_of<C, T>(c, opt.exchange, where);
      if (opt.exchange.kind == exchange_kind::allgather) {
        if constexpr (aggregation_of_v<C> == aggregation_class::allreduce)
          gradcomp::detail::fail(where, C::name,
                                 " is an allreduce-class compressor: gc::ef_sgd sums its messages in compressed form "
                                 "(an allreduce of their values), which the device scheme does not do; use gc::ef_sgd "
                                 "on the host, or a gather-class compressor");
      } else if constexpr (!sparse_message) {
        gradcomp::detail::fail(where, "the ", exchange_name(opt.exchange.kind), " exchange on the device needs a ",
                               "compressor whose device message is a cuda::sparse_vector (top_k, hard_threshold), not ",
                               C::name);
      }
    });
    agree_on(dim, where, "the dimension");
    agree_on(static_cast<std::uint64_t>(opt.exchange.kind), where, "the exchange kind");
    if (opt.exchange.kind != exchange_kind::allgather) {
      agree_on(global_k, where, "the global k");
      agree_on(static_cast<std::uint64_t>(opt.exchange.balance), where, "the region balance");
      sparse_.emplace(opt.exchange, dim, global_k);
    }
  }

  ef_sgd(const ef_sgd&) = delete;
  ef_sgd& operator=(const ef_sgd&) = delete;

  /// One step with the options' lr and no loss scale. A collective.
  step_status step(std::span<T> x, std::span<const T> g) { return step(x, g, {.lr = opt_.lr, .loss_scale = 1.0}); }

  /// One step with this step's lr and loss scale (g holds loss_scale times the gradient):
  /// compresses this worker's gradient g (device memory) with its residual, exchanges the
  /// messages, and applies the update to this rank's replica x (device memory), on
  /// comm.stream(). A collective. Returns skipped, having changed nothing, if any rank's g
  /// held NaN or Inf; throws the same gc::error on every rank, changing nothing, if any
  /// rank's local part failed.
  step_status step(std::span<T> x, std::span<const T> g, const step_options& s) {
    const char* where = "cuda::ef_sgd::step";
    const cudaStream_t stream = comm_->stream();
    const par_t policy = par.on(stream);
    const bool local_momentum = opt_.mode == momentum_mode::in_update && momentum_.size() > 0;

    // This rank's part (gc::detail::feedback_round::compress_only): a failure becomes a
    // failed status that reaches every rank.
    gradcomp::detail::frame_status status = gradcomp::detail::frame_status::ok;
    std::string error;
    bool compressed = false;
    try {
      gradcomp::detail::check_length(where, "x", x.size(), dim());
      gradcomp::detail::check_step_options(s, where);
      gradcomp::detail::check_length(where, "the gradient", g.size(), dim());
      if (!all_finite(policy, g)) {
        status = gradcomp::detail::frame_status::skipped;
      } else {
        std::span<const T> input = g;
        T scale = gradcomp::detail::unscale_factor<T>(s.lr, s.loss_scale);
        if (local_momentum) {
          detail::sgd::momentum(stream, static_cast<T>(opt_.momentum), momentum_.data(), g.data(),
                                gradcomp::detail::unscale_factor<T>(1.0, s.loss_scale), next_momentum_.data(), dim());
          input = std::span<const T>(next_momentum_.data(), dim());
          scale = static_cast<T>(s.lr);
        }
        feedback_.compress(policy, input, scale);
        compressed = true;
      }
    } catch (const std::exception& e) {
      status = gradcomp::detail::frame_status::failed;
      error = e.what();
    } catch (...) {
      status = gradcomp::detail::frame_status::failed;
      error = "a non-standard exception";
    }

    step_status outcome = step_status::skipped;
    traffic t;
    try {
      if (sparse_) {
        if constexpr (sparse_message) {
          outcome = sparse_->run(*comm_, status, error, feedback_.message(), mean_span(), where);
          if (outcome == step_status::applied) {
            feedback_.return_unsent(policy, sparse_->unsent_indices(), sparse_->unsent_values());
            t = sparse_->last_traffic();
          }
        }
      } else {
        outcome = exchange_statuses(status, error, where);
        if (outcome == step_status::applied) t = allgather_mean(policy, where);
      }
    } catch (...) {
      if (compressed) feedback_.undo();
      throw;
    }
    if (outcome == step_status::skipped) {
      if (compressed) feedback_.undo();
      ++skipped_;
      return step_status::skipped;
    }

    // Commit, as the host does.
    traffic_.record(t);
    if (!opt_.error_feedback) feedback_.assign_error(policy, std::span<const T>(zeros_.data(), dim()));  // clear_error
    if (local_momentum) {
      using std::swap;
      swap(momentum_, next_momentum_);
    }
    if (opt_.mode == momentum_mode::on_aggregate && momentum_.size() > 0) {
      detail::sgd::momentum(stream, static_cast<T>(opt_.momentum), momentum_.data(), mean_.data(), T(1),
                            momentum_.data(), dim());
      detail::sgd::subtract(stream, x.data(), momentum_.data(), dim());
    } else {
      detail::sgd::subtract(stream, x.data(), mean_.data(), dim());
    }
    return step_status::applied;
  }

  std::size_t dim() const noexcept { return feedback_.dim(); }
  const DeviceComm& communicator() const noexcept { return *comm_; }
  const sgd_options& options() const noexcept { return opt_; }
  /// This worker's error feedback (residual e_i in device memory, metrics, the compressor).
  const error_feedback<C, T>& feedback() const noexcept { return feedback_; }
  /// The last update before momentum: mean over ranks of decode(m_j) (device memory).
  std::span<const T> last_mean() const noexcept { return {mean_.data(), dim()}; }
  /// The momentum buffer (device memory; empty without momentum).
  std::span<const T> momentum() const noexcept { return {momentum_.data(), momentum_.size()}; }
  /// This worker's bytes, as gc::ef_sgd counts them: uplink = wire_bytes(m_i), downlink = the
  /// other ranks' messages; a sparse exchange: the blocks and histograms it sent and received.
  const traffic_log& bytes() const noexcept { return traffic_; }
  /// Steps skipped because some rank's gradient held NaN or Inf.
  std::uint64_t skipped_steps() const noexcept { return skipped_; }
  const exchange_options& exchange() const noexcept { return opt_.exchange; }
  /// Sparse exchanges: the last applied step's messages (empty for the allgather), its global
  /// selection S (ascending, device memory) and the reduce-scatter's region starts (host).
  std::span<const exchange_message> exchange_messages() const noexcept {
    return sparse_ ? sparse_->messages() : std::span<const exchange_message>();
  }
  std::span<const std::uint64_t> last_selection() const noexcept {
    return sparse_ ? sparse_->selection() : std::span<const std::uint64_t>();
  }
  /// S on the host (synchronises the communicator's stream).
  std::vector<std::size_t> last_selection_to_host() const {
    return sparse_ ? sparse_->selection_to_host(comm_->stream()) : std::vector<std::size_t>();
  }
  std::span<const std::size_t> regions() const noexcept {
    return sparse_ ? sparse_->regions() : std::span<const std::size_t>();
  }

 private:
  std::span<T> mean_span() noexcept { return {mean_.data(), dim()}; }

  /// Whether every g_i is finite (gc::detail::all_finite's answer; synchronises).
  bool all_finite(const par_t& policy, std::span<const T> g) {
    if (g.empty()) return true;
    flag_.resize(1);
    const unsigned long long none = g.size();
    detail::check(cudaMemcpyAsync(flag_.data(), &none, sizeof none, cudaMemcpyHostToDevice, policy.stream),
                  "cuda::ef_sgd", "cudaMemcpyAsync");
    detail::first_index_async(policy, g.size(), detail::non_finite_at<T, T>{g.data()}, flag_.data(), "cuda::ef_sgd");
    unsigned long long first = none;
    detail::check(cudaMemcpyAsync(&first, flag_.data(), sizeof first, cudaMemcpyDeviceToHost, policy.stream),
                  "cuda::ef_sgd", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(policy.stream), "cuda::ef_sgd", "cudaStreamSynchronize");
    return first == none;
  }

  /// Small host frames from every rank (through the device communicator; synchronises).
  void gather_host(std::span<const std::byte> mine, gradcomp::comm::gathered_bytes& all) {
    comm::allgather_host_bytes(*comm_, mine, all, stage_, control_);
  }

  /// Runs check() on every rank; if it failed anywhere, every rank throws the lowest failing
  /// rank's message (gc::detail::check_on_every_rank's protocol).
  template <class Check>
  void check_on_every_rank(const char* where, Check&& check) {
    std::string why;
    gradcomp::detail::frame_status status = gradcomp::detail::frame_status::ok;
    try {
      check();
    } catch (const std::exception& e) {
      status = gradcomp::detail::frame_status::failed;
      why = e.what();
    } catch (...) {
      status = gradcomp::detail::frame_status::failed;
      why = "a non-standard exception";
    }
    exchange_statuses(status, why, where);
  }

  /// gc::comm::agree_on over the device communicator: the same gc::error on every rank if
  /// the ranks passed different values.
  void agree_on(std::uint64_t value, const char* where, const char* what) {
    std::byte mine[sizeof value];
    std::memcpy(mine, &value, sizeof value);
    gradcomp::comm::gathered_bytes all;
    gather_host(std::span<const std::byte>(mine, sizeof value), all);
    const auto at = [&](int r) {
      std::uint64_t v = 0;
      const auto b = all.from(r);
      if (b.size() != sizeof v) gradcomp::detail::fail(where, "rank ", r, " sent ", b.size(), " bytes for ", what);
      std::memcpy(&v, b.data(), sizeof v);
      return v;
    };
    const std::uint64_t first = at(0);
    for (int r = 1; r < all.ranks(); ++r)
      if (const std::uint64_t v = at(r); v != first)
        gradcomp::detail::fail(where, what, " differs across ranks: rank 0 has ", first, ", rank ", r, " has ", v);
  }

  /// Every rank's status ([status][message]): throws "<where>: rank r failed: <message>" for
  /// the lowest failing rank, on every rank; else skipped if any rank skipped.
  step_status exchange_statuses(gradcomp::detail::frame_status status, const std::string& why, const char* where) {
    namespace d = gradcomp::detail;
    std::vector<std::byte> frame;
    if (status == d::frame_status::failed)
      d::failed_frame(why, frame);
    else if (status == d::frame_status::skipped)
      d::skipped_frame(frame);
    else
      d::empty_ok_frame(frame);
    gradcomp::comm::gathered_bytes all;
    gather_host(frame, all);
    d::throw_if_any_failed(all, where);  // the host schemes' frames and merge (algorithms/exchange.hpp)
    return d::any_skipped(all) ? step_status::skipped : step_status::applied;
  }

  /// The all-gather: mean = (decode(m_0) + decode(m_1) + ...) / P, added in rank order from
  /// zero (gc::ef_sgd's all-gather); returns the step's bytes.
  traffic allgather_mean(const par_t& policy, const char* where) {
    const cudaStream_t stream = policy.stream;
    const int ranks = comm_->size();
    const std::span<T> mean = mean_span();
    traffic t;
    if constexpr (sparse_message) {
      using index_type = typename message_type::index_type;
      constexpr std::size_t entry = sizeof(T) + sizeof(index_type);
      const message_type& m = feedback_.message();
      const std::size_t nnz = m.nnz(stream);
      if (nnz > m.capacity())
        gradcomp::detail::fail(where, "the message counts ", nnz, " entries in room for ", m.capacity());
      // The block: nnz values, then nnz indices.
      send_.resize(std::max<std::size_t>(nnz * entry, 1));
      if (nnz > 0) {
        detail::check(cudaMemcpyAsync(send_.data(), m.values(), nnz * sizeof(T), cudaMemcpyDeviceToDevice, stream),
                      where, "cudaMemcpyAsync");
        detail::check(cudaMemcpyAsync(send_.data() + nnz * sizeof(T), m.indices(), nnz * sizeof(index_type),
                                      cudaMemcpyDeviceToDevice, stream),
                      where, "cudaMemcpyAsync");
      }
      comm_->allgatherv(std::span<const std::byte>(send_.data(), nnz * entry), blocks_.receive());
      counts_.assign(static_cast<std::size_t>(ranks), 0);
      std::size_t most = 0;
      for (int r = 0; r < ranks; ++r) {
        const std::size_t bytes = blocks_.size(r);
        if (bytes % entry != 0 || bytes / entry > dim())
          gradcomp::detail::fail(where, "rank ", r, " sent a message of ", bytes, " bytes");
        counts_[static_cast<std::size_t>(r)] = bytes / entry;
        most = std::max<std::size_t>(most, bytes / entry);
        (r == comm_->rank() ? t.uplink : t.downlink) += message_type::wire_bytes_for(bytes / entry);
      }
      zero_mean(stream);
      if (most > 0) {
        received_.prepare(dim(), most);  // before the loop: no reallocation while kernels read it
        for (int r = 0; r < ranks; ++r) {
          const std::size_t c = counts_[static_cast<std::size_t>(r)];
          if (c == 0) continue;  // adds nothing
          const std::byte* block = blocks_.data() + blocks_.offset(r);
          detail::check(cudaMemcpyAsync(received_.values(), block, c * sizeof(T), cudaMemcpyDeviceToDevice, stream),
                        where, "cudaMemcpyAsync");
          detail::check(cudaMemcpyAsync(received_.indices(), block + c * sizeof(T), c * sizeof(index_type),
                                        cudaMemcpyDeviceToDevice, stream),
                        where, "cudaMemcpyAsync");
          // From pageable memory: staged before the call returns, so counts_ may change after.
          detail::check(cudaMemcpyAsync(received_.count(), &counts_[static_cast<std::size_t>(r)], sizeof(std::uint64_t),
                                        cudaMemcpyHostToDevice, stream),
                        where, "cudaMemcpyAsync");
          gradcomp::decompress_add(policy, received_, mean);
        }
      }
    } else {
      // Any other device payload: its host encoding, staged through host memory.
      const std::vector<std::byte> mine = feedback_.message().encode(stream);
      gradcomp::comm::gathered_bytes all;
      comm::allgather_host_bytes(*comm_, mine, all, send_, blocks_);
      // Decode everything before touching the mean (a malformed message leaves it as it was).
      host_received_.resize(static_cast<std::size_t>(ranks));
      for (int r = 0; r < ranks; ++r) {
        gradcomp::decode_into(all.from(r), host_received_[static_cast<std::size_t>(r)]);
        (r == comm_->rank() ? t.uplink : t.downlink) += all.from(r).size();
      }
      zero_mean(stream);
      for (int r = 0; r < ranks; ++r) {
        received_.from_host(host_received_[static_cast<std::size_t>(r)], stream);
        gradcomp::decompress_add(policy, received_, mean);
      }
    }
    detail::sgd::divide(stream, mean.data(), ranks, dim());
    return t;
  }

  void zero_mean(cudaStream_t stream) {
    if (dim() > 0)
      detail::check(cudaMemsetAsync(mean_.data(), 0, dim() * sizeof(T), stream), "cuda::ef_sgd", "cudaMemsetAsync");
  }

  DeviceComm* comm_;
  error_feedback<C, T> feedback_;
  sgd_options opt_;
  device_buffer<T> mean_;           // mean over ranks of decode(m_j)
  device_buffer<T> momentum_;       // v (on_aggregate: of the mean; in_update: of g)
  device_buffer<T> next_momentum_;  // in_update: the new v, committed once the step succeeds
  device_buffer<T> zeros_;          // error_feedback = false: what the residual is cleared to
  std::optional<sparse_exchange<T>> sparse_;  // unless the exchange is the allgather
  traffic_log traffic_;
  std::uint64_t skipped_ = 0;
  // Scratch kept across steps.
  device_buffer<unsigned long long> flag_;  // the first non-finite index of g
  device_buffer<std::byte> stage_, send_;
  comm::device_blocks control_, blocks_;  // statuses and agreements; the all-gather's messages
  std::vector<std::uint64_t> counts_;     // the all-gather's entry counts per rank
  message_type received_;                 // the all-gather: one rank's message at a time
  std::vector<typename message_type::host_type> host_received_;  // non-sparse payloads
};

}  // namespace gradcomp::cuda
