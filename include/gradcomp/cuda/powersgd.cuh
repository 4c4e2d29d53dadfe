#pragma once
// gc::cuda::powersgd<T>: gc::powersgd (lowrank/powersgd.hpp) with its state in device memory:
// the residuals e, M, every Q (and the next one), and the first all-reduce's buffer (the
// uncompressed tensors' values, then every P). One step with gradient g (device memory) and
// factor scale, given allreduce_mean (the mean over workers, in place, on device memory):
//
//   M = e + scale * g                           detail::feedback_element (the host's bits)
//   P = M Q                                     for every compressed tensor
//   allreduce_mean(uncompressed tensors' M, and every P)
//   P = orthogonalise(P);  Q = M^T P
//   allreduce_mean(every Q)
//   decoded = P Q^T;  e = M - decoded;  Q's zero columns redrawn; keep Q (the warm start)
//   uncompressed tensors: decoded = their mean, e = 0
//
// The same definition as the host's: the skip rule and the layout (lowrank/shapes.hpp), Q's
// initial draw (lowrank::initial_q, drawn on the host and copied), the redraw of zero
// columns with the host's own q_stream / q_draw (lowrank_warm_start.cuh), modified
// Gram-Schmidt with the degenerate-column rule (lowrank_orthogonalise.cuh), every sum in
// double. Not bit for bit: P = M Q and the orthogonalisation's dot products add in another
// (fixed) order than exec::seq, so the results match exec::seq within a tolerance
// (docs/powersgd.md, "On the GPU"), and repeat bit for bit from run to run. M, Q = M^T P,
// decoded = P Q^T and e = M - decoded are exec::seq's bits given the same e, g, P and Q.
//
// The all-reduce: allreduce_mean(std::span<T> values) receives device memory. It is called
// after the policy's stream has been synchronised (values are ready for any stream or host
// copy); when it returns, the mean must be in values, or be enqueued on the policy's stream
// (a communicator of device memory, such as NCCL on that stream, plugs in here). It is called
// twice per step, with the same sizes on every worker.
//
// Failures, as the host's: prepare() checks the lengths and that M is finite before the state
// changes; finish() fails only on what is identical on every worker (the all-reduced P and Q
// not finite, or allreduce_mean's own exception), and commits e and Q after the last check.
// A failed step changes nothing (decoded included). A CUDA runtime error (gc::cuda::runtime_error)
// thrown before the commit changes no state either, though decoded may be partly written.
//
// Synchronisation: a step waits for the stream six times (M's check; before each all-reduce;
// after each all-reduce, for its check; the step's count of redrawn columns), each to read at
// most 16 bytes. More tensors cost no more launches: each phase is one launch over the whole
// model (the two products: one per group of 32 columns of r), lowrank_layout.cuh.
#include <cuda_runtime_api.h>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../lowrank/powersgd.hpp"
#include "../lowrank/shapes.hpp"
#include "../lowrank/warm_start.hpp"
#include "elementwise.cuh"
#include "error.cuh"
#include "first_index.cuh"
#include "launch.cuh"
#include "lowrank_layout.cuh"
#include "lowrank_orthogonalise.cuh"
#include "lowrank_products.cuh"
#include "lowrank_warm_start.cuh"
#include "memory.cuh"
#include "policy.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// x[i] is NaN or infinite.
template <class T>
struct non_finite_value {
  const T* x;
  __device__ bool operator()(std::size_t i) const { return !isfinite(static_cast<double>(x[i])); }
};

/// first[v] = m[offset + v - begin] for every value v of every nonempty uncompressed tensor.
template <class T>
__global__ void gather_dense_kernel(const dense_slot* slots, std::size_t count, std::size_t total, const T* m,
                                    T* first) {
  for (std::size_t v = global_thread(); v < total; v += grid_threads()) {
    const dense_slot s = slots[slot_index(slots, count, v, &dense_slot::begin)];
    first[v] = m[s.offset + (v - s.begin)];
  }
}

/// decoded = the all-reduced values and m = 0 (no residual) on every uncompressed tensor.
template <class T>
__global__ void scatter_dense_kernel(const dense_slot* slots, std::size_t count, std::size_t total, const T* first,
                                     T* decoded, T* m) {
  for (std::size_t v = global_thread(); v < total; v += grid_threads()) {
    const dense_slot s = slots[slot_index(slots, count, v, &dense_slot::begin)];
    const std::size_t at = s.offset + (v - s.begin);
    decoded[at] = first[v];
    m[at] = T(0);
  }
}

template <class T>
void gather_dense_async(const par_t& policy, const lowrank_tables& t, const T* m, T* first) {
  if (t.dense_values() == 0) return;
  gather_dense_kernel<T><<<elementwise_grid(t.dense_values()), tuning::elementwise::block_threads, 0, policy.stream>>>(
      t.dense(), t.dense_count(), t.dense_values(), m, first);
  check_launch("powersgd", "gather_dense_kernel");
}

template <class T>
void scatter_dense_async(const par_t& policy, const lowrank_tables& t, const T* first, T* decoded, T* m) {
  if (t.dense_values() == 0) return;
  scatter_dense_kernel<T><<<elementwise_grid(t.dense_values()), tuning::elementwise::block_threads, 0, policy.stream>>>(
      t.dense(), t.dense_count(), t.dense_values(), first, decoded, m);
  check_launch("powersgd", "scatter_dense_kernel");
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

template <std::floating_point T = float>
class powersgd {
  static_assert(std::same_as<T, float> || std::same_as<T, double>, "gc::cuda::powersgd is for float and double");

 public:
  using value_type = T;

  /// Zero residuals; each compressed tensor's Q is its initial draw (the host's). Throws
  /// gc::error if the rank is 0 or a size overflows. Allocates and synchronises.
  powersgd(std::span<const tensor_shape> shapes, powersgd_options opt)
      : opt_(opt),
        layout_(checked_layout(shapes, opt)),
        tables_(layout_),
        residual_(layout_.dim),
        m_(layout_.dim),
        q_(layout_.q_values),
        next_q_(layout_.q_values),
        first_(layout_.uncompressed_values + layout_.p_values),
        status_(status_slots) {
    zero(residual_);
    zero(m_);
    zero(next_q_);
    zero(first_);
    std::vector<T> q(layout_.q_values, T(0));
    for (std::size_t t = 0; t < layout_.tensors.size(); ++t) {
      const auto& s = layout_.tensors[t];
      if (s.compressed)
        lowrank::initial_q(opt.seed, t, std::span<T>(q).subspan(s.q_offset, s.shape.cols * layout_.rank));
    }
    if (!q.empty())
      detail::check(cudaMemcpy(q_.data(), q.data(), q.size() * sizeof(T), cudaMemcpyHostToDevice), "powersgd",
                    "cudaMemcpy (Q's initial draw)");
  }

  powersgd(std::initializer_list<tensor_shape> shapes, powersgd_options opt)
      : powersgd(std::span<const tensor_shape>(shapes.begin(), shapes.size()), opt) {}

  /// One step (see the header comment): g and decoded in device memory, allreduce_mean on
  /// device memory (for one worker: a function that does nothing).
  template <class AllreduceMean>
  void step(const par_t& policy, std::span<const T> g, T scale, std::span<T> decoded, AllreduceMean&& allreduce_mean) {
    prepare(policy, g, scale, decoded.size(), "cuda::powersgd::step");
    finish(policy, decoded, allreduce_mean, "cuda::powersgd::step");
  }

  /// The local part: checks g's and decoded's lengths, forms M = e + scale * g, checks that it
  /// is finite (one wait for the stream). Changes no state; throws gc::error naming `where`.
  void prepare(const par_t& policy, std::span<const T> g, T scale, std::size_t decoded_size, const char* where) {
    prepared_ = false;
    gradcomp::detail::check_length(where, "the gradient", g.size(), dim());
    gradcomp::detail::check_length(where, "the output", decoded_size, dim());
    if (dim() > 0) feedback_input_with(policy, residual(), g, scale, std::span<T>(m_.data(), dim()));
    if (first_non_finite(policy, m_.data(), dim()) < dim())
      gradcomp::detail::fail(where, "M = e + scale * g is not finite (an overflow: the gradient is finite, scale = ",
                             scale, ")");
    prepared_ = true;
  }

  /// The exchange and the commit, after prepare(): the two all-reduces, decoded = the mean
  /// update (device memory), then e and Q are replaced. Throws gc::error (changing nothing,
  /// decoded included) only if decoded has the wrong length, an all-reduce throws, or the
  /// all-reduced P or Q is not finite: both are the same on every worker, so every worker
  /// throws alike.
  template <class AllreduceMean>
  void finish(const par_t& policy, std::span<T> decoded, AllreduceMean&& allreduce_mean, const char* where) {
    if (!prepared_) gradcomp::detail::fail(where, "finish() needs a successful prepare() first");
    prepared_ = false;
    gradcomp::detail::check_length(where, "the output", decoded.size(), dim());
    const std::size_t r = layout_.rank;
    T* p = first_.data() + layout_.uncompressed_values;  // every tensor's P, after the uncompressed values
    detail::check(cudaMemsetAsync(status_.data() + degenerate_slot, 0, 2 * sizeof(unsigned long long), policy.stream),
                  "powersgd", "cudaMemsetAsync");
    // P = M Q; the uncompressed tensors' values go first.
    detail::gather_dense_async(policy, tables_, m_.data(), first_.data());
    detail::m_times_q_async(policy, tables_, r, m_.data(), q_.data(), p);
    synchronise(policy);
    allreduce_mean(std::span<T>(first_.data(), first_.size()));
    if (first_non_finite(policy, first_.data(), first_.size()) < first_.size())
      gradcomp::detail::fail(where, "the all-reduced P (or an uncompressed tensor's mean) is not finite");
    // Orthogonalise P, then Q = M^T P.
    detail::orthogonalise_async(policy, tables_, r, p, status_.data() + degenerate_slot);
    detail::mt_times_p_async(policy, tables_, r, m_.data(), p, next_q_.data());
    synchronise(policy);
    allreduce_mean(std::span<T>(next_q_.data(), next_q_.size()));
    powersgd_step_info info;
    if (first_non_finite(policy, next_q_.data(), next_q_.size(), &info.degenerate_columns) < next_q_.size())
      gradcomp::detail::fail(where, "the all-reduced Q is not finite");
    // Nothing below throws gc::error: decode, the new residuals, the warm start for the next step.
    detail::decode_factors_async(policy, tables_, r, p, next_q_.data(), decoded.data(), m_.data());
    detail::scatter_dense_async(policy, tables_, first_.data(), decoded.data(), m_.data());
    detail::redraw_zero_columns_async(policy, tables_, r, next_q_.data(), opt_.seed, steps_ + 1,
                                      status_.data() + redrawn_slot);
    info.redrawn_columns = static_cast<std::size_t>(read_status(policy, redrawn_slot));
    using std::swap;
    swap(residual_, m_);
    swap(q_, next_q_);
    ++steps_;
    last_ = info;
  }

  std::size_t dim() const noexcept { return layout_.dim; }
  const powersgd_options& options() const noexcept { return opt_; }
  const lowrank::model_layout& layout() const noexcept { return layout_; }
  /// Values all-reduced per step: the uncompressed tensors, every P and every Q.
  std::size_t values_per_step() const noexcept { return first_.size() + next_q_.size(); }
  /// The residual e over the whole model, in device memory (zero on uncompressed tensors).
  /// Spans into the state stay valid until the next step or restore.
  std::span<const T> residual() const noexcept { return {residual_.data(), residual_.size()}; }
  /// Tensor i's residual (rows x cols) and Q (cols x r; empty for an uncompressed tensor), in
  /// device memory.
  std::span<const T> residual(std::size_t i) const { return residual().subspan(slot(i).offset, layout_.size_of(slot(i))); }
  std::span<const T> q(std::size_t i) const {
    const auto& t = slot(i);
    return t.compressed ? all_q().subspan(t.q_offset, t.shape.cols * layout_.rank) : std::span<const T>();
  }
  /// The last step's P (rows x r, orthonormal columns or zero) of tensor i (empty if
  /// uncompressed), in device memory.
  std::span<const T> p(std::size_t i) const {
    const auto& t = slot(i);
    return t.compressed ? std::span<const T>(first_.data(), first_.size())
                              .subspan(layout_.uncompressed_values + t.p_offset, t.shape.rows * layout_.rank)
                        : std::span<const T>();
  }
  std::uint64_t steps() const noexcept { return steps_; }
  const powersgd_step_info& last_step() const noexcept { return last_; }
  /// Every compressed tensor's Q, in tensor order, in device memory.
  std::span<const T> all_q() const noexcept { return {q_.data(), q_.size()}; }

  /// For checkpoints: replaces the state. residual (dim() values) and q (layout().q_values)
  /// may be device or host memory (cudaMemcpyDefault); throws gc::error on other lengths.
  /// Synchronises the policy's stream.
  void restore(const par_t& policy, std::span<const T> residual, std::span<const T> q, std::uint64_t steps) {
    gradcomp::detail::check_length("cuda::powersgd::restore", "the residual", residual.size(), dim());
    gradcomp::detail::check_length("cuda::powersgd::restore", "Q", q.size(), q_.size());
    copy_in(policy, residual_.data(), residual);
    copy_in(policy, q_.data(), q);
    synchronise(policy);
    steps_ = steps;
    prepared_ = false;
  }
  void restore(std::span<const T> residual, std::span<const T> q, std::uint64_t steps) {
    restore(par, residual, q, steps);
  }

 private:
  // The device status words: the first non-finite index of a check, and the step's counts.
  static constexpr std::size_t first_slot = 0, degenerate_slot = 1, redrawn_slot = 2, status_slots = 3;

  static lowrank::model_layout checked_layout(std::span<const tensor_shape> shapes, const powersgd_options& opt) {
    if (opt.rank == 0) gradcomp::detail::fail("cuda::powersgd", "rank must be at least 1 (got 0)");
    return lowrank::model_layout::of(shapes, opt.rank, "cuda::powersgd");
  }

  const lowrank::tensor_slot& slot(std::size_t i) const {
    if (i >= layout_.tensors.size())
      gradcomp::detail::fail("cuda::powersgd", "tensor ", i, " is not in [0, ", layout_.tensors.size(), ")");
    return layout_.tensors[i];
  }

  static void zero(device_buffer<T>& b) {
    if (b.size() > 0) detail::check(cudaMemset(b.data(), 0, b.size() * sizeof(T)), "powersgd", "cudaMemset");
  }

  static void synchronise(const par_t& policy) {
    detail::check(cudaStreamSynchronize(policy.stream), "powersgd", "cudaStreamSynchronize");
  }

  void copy_in(const par_t& policy, T* to, std::span<const T> from) {
    if (from.empty() || from.data() == to) return;
    detail::check(cudaMemcpyAsync(to, from.data(), from.size() * sizeof(T), cudaMemcpyDefault, policy.stream),
                  "powersgd", "cudaMemcpyAsync");
  }

  /// Status word `slot`, read back (waits for the stream).
  unsigned long long read_status(const par_t& policy, std::size_t slot) {
    unsigned long long v = 0;
    detail::check(cudaMemcpyAsync(&v, status_.data() + slot, sizeof v, cudaMemcpyDeviceToHost, policy.stream),
                  "powersgd", "cudaMemcpyAsync");
    synchronise(policy);
    return v;
  }

  /// The first index of a non-finite value among x[0, n) (device memory), or n; waits for the
  /// stream. With `degenerate`, the step's degenerate-column count is read in the same wait.
  std::size_t first_non_finite(const par_t& policy, const T* x, std::size_t n, std::size_t* degenerate = nullptr) {
    unsigned long long* first = status_.data() + first_slot;
    detail::check(cudaMemsetAsync(first, 0xff, sizeof *first, policy.stream), "powersgd", "cudaMemsetAsync");
    detail::first_index_async(policy, n, detail::non_finite_value<T>{x}, first, "powersgd");
    unsigned long long host[2] = {0, 0};
    detail::check(cudaMemcpyAsync(host, first, (degenerate != nullptr ? 2 : 1) * sizeof(unsigned long long),
                                  cudaMemcpyDeviceToHost, policy.stream),
                  "powersgd", "cudaMemcpyAsync");
    synchronise(policy);
    static_assert(degenerate_slot == first_slot + 1);
    if (degenerate != nullptr) *degenerate = static_cast<std::size_t>(host[1]);
    return host[0] < n ? static_cast<std::size_t>(host[0]) : n;
  }

  powersgd_options opt_;
  lowrank::model_layout layout_;
  detail::lowrank_tables tables_;
  device_buffer<T> residual_;  // e, whole model
  device_buffer<T> m_;         // M during a step; becomes the new e at the commit
  device_buffer<T> q_;         // every compressed tensor's Q (the warm start)
  device_buffer<T> next_q_;    // this step's M^T P, committed at the end
  device_buffer<T> first_;     // the first all-reduce: uncompressed values, then every P
  device_buffer<unsigned long long> status_;
  std::uint64_t steps_ = 0;
  bool prepared_ = false;
  powersgd_step_info last_;
};

}  // namespace gradcomp::cuda
