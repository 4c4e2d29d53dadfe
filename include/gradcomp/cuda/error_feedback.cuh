#pragma once
// gc::cuda::error_feedback<C, T>: error feedback with the residual, the gradient and the
// message in device memory.
//
// Each step computes, on the policy's stream, what gc::error_feedback computes on the host:
//     p = e + scale * g          (g float32, or bfloat16 / float16 widened exactly)
//     m = C(p)                   (the back end's kernel for C)
//     e = p - decode(m)
// and ||e||^2 in the reference order, with the same bits (the pieces are the reference's
// rules; the tests compare with exec::seq). feedback_step.cuh: hard-threshold's step is one
// fused pass over g and e; other compressors compose the back end's kernels. The new residual is formed beside the old one
// and swapped in on success, so a rejected step changes nothing and undo() can take one back.
//
// Synchronisation: compress() waits once for the stream, to read ||e||^2 and the message's
// entry count (16 bytes), since a step whose residual is not finite must be rejected before
// it is committed. Everything else stays on the device. (A variant that keeps the check on
// the device, for CUDA graphs, would have to commit conditionally in a kernel.)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../backend.hpp"
#include "../concepts.hpp"
#include "../detail/strict_fp.hpp"
#include "../error.hpp"
#include "../feedback/checkpoint.hpp"
#include "../float16.hpp"
#include "elementwise.cuh"
#include "error.cuh"
#include "feedback_step.cuh"
#include "first_index.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "reduce.cuh"
#include "sparse_vector.cuh"

namespace gradcomp::cuda::detail {

/// Element i of v (T, or 16-bit widened to T) is not finite.
template <class T, class V>
struct non_finite_at {
  const V* v;
  __device__ bool operator()(std::size_t i) const { return !isfinite(static_cast<double>(gradient_at<T>(v, i))); }
};

/// e[indices[j]] = e[indices[j]] + values[j] (return_unsent; distinct indices).
template <class T, class Index>
__global__ void return_entries_kernel(T* e, const Index* indices, const T* values, std::size_t n) {
  for (std::size_t j = global_thread(); j < n; j += grid_threads()) {
    const auto i = static_cast<std::size_t>(indices[j]);
    e[i] = e[i] + values[j];
  }
}

/// out[j] = e[indices[j]].
template <class T, class Index>
__global__ void residual_at_kernel(const T* e, const Index* indices, std::size_t n, T* out) {
  for (std::size_t j = global_thread(); j < n; j += grid_threads()) out[j] = e[static_cast<std::size_t>(indices[j])];
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

template <class C, std::floating_point T = float>
class error_feedback {
 public:
  using compressor_type = C;
  using value_type = T;
  using message_type = device_payload_t<C, T>;

  /// Wraps c for vectors of dimension dim; the residual starts at zero (allocates 2 dim
  /// values of device memory; synchronises once).
  error_feedback(C c, std::size_t dim) : compressor_(std::move(c)), residual_(dim), scratch_(dim), flags_(2) {
    if (dim > 0)
      detail::check(cudaMemset(residual_.data(), 0, dim * sizeof(T)), "error_feedback", "cudaMemset");
  }

  /// One step on the policy's stream: p = e + scale * g; m = C(p); e = p - decode(m), g in
  /// device memory (T, bfloat16 or float16). Returns m, valid until the next successful
  /// call. On error (size, non-finite scale or gradient, overflow) nothing changes.
  template <class G>
    requires std::same_as<G, T> || (half_precision<G> && std::same_as<T, float>)
  const message_type& compress(const par_t& policy, std::span<const G> g, T scale = T(1)) {
    if (g.size() != dim())
      gradcomp::detail::fail("error_feedback", "input size ", g.size(), " does not match the residual dimension ", dim());
    if (!std::isfinite(scale)) gradcomp::detail::fail("error_feedback", "scale must be finite (got ", scale, ")");
    const std::span<T> p(scratch_.data(), dim());  // the new residual, beside the old one
    double* device_error = reinterpret_cast<double*>(flags_.data());
    // From here scratch no longer holds what undo() would restore; a seeded compressor's
    // step (random-k) goes back if the step fails.
    can_undo_ = false;
    [[maybe_unused]] std::uint64_t step_before = 0;
    if constexpr (seeded_compressor<C>) step_before = compressor_.step;
    double error = 0.0;
    unsigned long long host[2] = {0, 0};
    try {
      detail::feedback_step_async(policy, compressor_, std::span<const T>(residual_.data(), dim()), g, scale, p,
                                  staging_, device_error);
      // One wait: ||e||^2 and the entry count (sparse payloads; a sign payload's size is known).
      detail::check(cudaMemcpyAsync(&host[0], device_error, sizeof(double), cudaMemcpyDeviceToHost, policy.stream),
                    "error_feedback", "cudaMemcpyAsync");
      if constexpr (has_device_count)
        detail::check(cudaMemcpyAsync(&host[1], staging_.count(), sizeof(std::uint64_t), cudaMemcpyDeviceToHost,
                                      policy.stream),
                      "error_feedback", "cudaMemcpyAsync");
      detail::check(cudaStreamSynchronize(policy.stream), "error_feedback", "cudaStreamSynchronize");
      static_assert(sizeof error == sizeof host[0]);
      std::memcpy(&error, &host[0], sizeof error);
      if (!std::isfinite(error)) reject_if_non_finite(policy, g, std::span<const T>(p));
    } catch (...) {
      if constexpr (seeded_compressor<C>) compressor_.step = step_before;
      throw;
    }

    using std::swap;
    swap(residual_, scratch_);
    swap(message_, staging_);
    can_undo_ = true;
    if constexpr (seeded_compressor<C>) previous_step_ = step_before;
    previous_metrics_ = metrics_;
    ++metrics_.steps;
    if constexpr (has_device_count) {
      metrics_.elements_sent += host[1];
      metrics_.wire_bytes += message_type::wire_bytes_for(static_cast<std::size_t>(host[1]));
    } else {
      metrics_.elements_sent += message_.sent_elements();
      metrics_.wire_bytes += message_.wire_bytes();
    }
    metrics_.total_error += error;
    return message_;
  }

  /// The same with a gradient span of non-const elements.
  template <class G>
    requires(!std::is_const_v<G>)
  const message_type& compress(const par_t& policy, std::span<G> g, T scale = T(1)) {
    return compress(policy, std::span<const G>(g), scale);
  }

  /// The residual e, in device memory.
  std::span<const T> error() const noexcept { return {residual_.data(), dim()}; }

  /// Replaces the residual by e (dim() finite values in device memory), as
  /// gc::error_feedback::assign_error: metrics and the compressor's state are kept, there is
  /// nothing to undo afterwards, and a wrong length or a non-finite value throws gc::error
  /// and changes nothing. Synchronises (to check e).
  void assign_error(const par_t& policy, std::span<const T> e) {
    const std::string where = "error_feedback<" + std::string(C::name) + ">";
    if (e.size() != dim())
      gradcomp::detail::fail(where.c_str(), "assign_error: got ", e.size(), " values for a residual of dimension ",
                             dim());
    if (const std::size_t i = first_non_finite(policy, e); i < e.size()) {
      T v{};
      detail::check(cudaMemcpy(&v, e.data() + i, sizeof v, cudaMemcpyDeviceToHost), "error_feedback", "cudaMemcpy");
      gradcomp::detail::fail(where.c_str(), "assign_error: e[", i, "] = ", v,
                             " is not finite (the residual is always finite)");
    }
    if (!e.empty())
      detail::check(cudaMemcpyAsync(residual_.data(), e.data(), e.size() * sizeof(T), cudaMemcpyDeviceToDevice,
                                    policy.stream),
                    "error_feedback", "cudaMemcpyAsync");
    can_undo_ = false;
  }
  // --- return_unsent (begin): for the device sparse exchanges (cuda/comm/sparse_exchange.cuh) ---
  /// gc::error_feedback::return_unsent on device memory: e[indices[j]] += values[j] for the
  /// entries of the last message that an exchange did not deliver (indices and values in
  /// device memory, as gc::cuda::sparse_exchange::unsent_indices() / unsent_values() give
  /// them). The same checks and metrics as the host's, with the same bits: elements_sent loses
  /// the entries, total_error changes by the sum in index order of sum^2 - e^2 in double
  /// (added on the host, from the entries and the residual values they touch, copied back:
  /// synchronises). Indices must ascend and stay below dim(); throws gc::error, changing
  /// nothing, otherwise or if a sum is not finite. undo() still restores the residual from
  /// before the last compress.
  template <std::unsigned_integral Index>
  GRADCOMP_NO_FP_CONTRACT void return_unsent(const par_t& policy, std::span<const Index> indices,
                                             std::span<const T> values) {
    GRADCOMP_NO_FP_CONTRACT_BODY
    const std::string w = "error_feedback<" + std::string(C::name) + ">::return_unsent";
    if (indices.size() != values.size())
      gradcomp::detail::fail(w.c_str(), indices.size(), " indices but ", values.size(), " values");
    const std::size_t n = indices.size();
    if (n == 0) return;  // the host adds 0.0 to total_error: the same bits
    std::vector<Index> index(n);
    std::vector<T> value(n), old(n);
    detail::check(cudaMemcpyAsync(index.data(), indices.data(), n * sizeof(Index), cudaMemcpyDeviceToHost, policy.stream),
                  "error_feedback", "cudaMemcpyAsync");
    detail::check(cudaMemcpyAsync(value.data(), values.data(), n * sizeof(T), cudaMemcpyDeviceToHost, policy.stream),
                  "error_feedback", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(policy.stream), "error_feedback", "cudaStreamSynchronize");
    for (std::size_t j = 0; j < n; ++j) {
      const auto i = static_cast<std::size_t>(index[j]);
      if (i >= dim() || (j > 0 && index[j] <= index[j - 1]))
        gradcomp::detail::fail(w.c_str(), "index ", i, " at position ", j, " (indices must ascend and stay below ", dim(),
                               ")");
    }
    T* at = static_cast<T*>(policy.workspace().reserve(n * sizeof(T), policy.stream));
    detail::residual_at_kernel<T, Index><<<detail::elementwise_grid(n), tuning::elementwise::block_threads, 0,
                                           policy.stream>>>(residual_.data(), indices.data(), n, at);
    detail::check_launch("error_feedback::return_unsent", "residual_at_kernel");
    detail::check(cudaMemcpyAsync(old.data(), at, n * sizeof(T), cudaMemcpyDeviceToHost, policy.stream),
                  "error_feedback", "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(policy.stream), "error_feedback", "cudaStreamSynchronize");
    double change = 0.0;
    for (std::size_t j = 0; j < n; ++j) {
      const T sum = old[j] + value[j];
      if (!std::isfinite(sum))
        gradcomp::detail::fail(w.c_str(), "e[", static_cast<std::size_t>(index[j]), "] + ", value[j],
                               " is not finite; the residual is unchanged");
      change += static_cast<double>(sum) * static_cast<double>(sum) - static_cast<double>(old[j]) * static_cast<double>(old[j]);
    }
    detail::return_entries_kernel<T, Index><<<detail::elementwise_grid(n), tuning::elementwise::block_threads, 0,
                                              policy.stream>>>(residual_.data(), indices.data(), values.data(), n);
    detail::check_launch("error_feedback::return_unsent", "return_entries_kernel");
    metrics_.elements_sent -= std::min<std::uint64_t>(metrics_.elements_sent, n);
    metrics_.total_error += change;
  }
  // --- return_unsent (end) ---

  const message_type& message() const noexcept { return message_; }
  const C& base() const noexcept { return compressor_; }
  std::size_t dim() const noexcept { return residual_.size(); }
  const feedback_metrics& metrics() const noexcept { return metrics_; }
  /// Whether undo() would succeed.
  bool can_undo() const noexcept { return can_undo_; }

  /// Takes back the last successful step (its residual is still in the other buffer), and a
  /// seeded compressor's step. Only the last call, only once, and not after a failed call.
  void undo() {
    if (!can_undo_) gradcomp::detail::fail("error_feedback::undo", "no step to undo");
    using std::swap;
    swap(residual_, scratch_);
    metrics_ = previous_metrics_;
    if constexpr (seeded_compressor<C>) compressor_.step = previous_step_;
    can_undo_ = false;
  }

 private:
  /// The first index of a non-finite value in v (T, or 16-bit widened), or v.size().
  template <class V>
  std::size_t first_non_finite(const par_t& policy, std::span<const V> v) {
    auto* first = reinterpret_cast<unsigned long long*>(flags_.data()) + 1;
    const unsigned long long none = v.size();
    detail::check(cudaMemcpyAsync(first, &none, sizeof none, cudaMemcpyHostToDevice, policy.stream), "error_feedback",
                  "cudaMemcpyAsync");
    detail::first_index_async(policy, v.size(), detail::non_finite_at<T, V>{v.data()}, first, "error_feedback");
    unsigned long long i = none;
    detail::check(cudaMemcpyAsync(&i, first, sizeof i, cudaMemcpyDeviceToHost, policy.stream), "error_feedback",
                  "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(policy.stream), "error_feedback", "cudaStreamSynchronize");
    return static_cast<std::size_t>(i);
  }

  /// ||e||^2 was not finite: throws, naming the cause, if the gradient or the new residual
  /// holds a non-finite value (the state is unchanged); returns when every entry is finite
  /// and only the sum of squares overflowed (double input), which gc::error_feedback accepts.
  template <class G>
  void reject_if_non_finite(const par_t& policy, std::span<const G> g, std::span<const T> e_new) {
    const std::string where = "error_feedback<" + std::string(C::name) + ">";
    if (const std::size_t i = first_non_finite(policy, g); i < g.size()) {
      G v{};
      detail::check(cudaMemcpy(&v, g.data() + i, sizeof v, cudaMemcpyDeviceToHost), "error_feedback", "cudaMemcpy");
      T shown{};
      if constexpr (half_precision<G>)
        shown = to_float(v);
      else
        shown = v;
      gradcomp::detail::fail(where.c_str(), "x[", i, "] = ", shown,
                             " is not finite; error feedback rejects non-finite input and leaves its state unchanged");
    }
    if (first_non_finite(policy, e_new) < e_new.size())
      gradcomp::detail::fail(where.c_str(),
                             "the new residual is not finite (e + scale * x overflowed, or the message decodes to a "
                             "non-finite value); error feedback rejects the step and leaves its state unchanged");
  }

  /// Sparse payloads count their entries on the device; the others know their size.
  static constexpr bool has_device_count = requires(message_type& m) { m.count(); };

  C compressor_;
  device_buffer<T> residual_;
  device_buffer<T> scratch_;
  device_buffer<double> flags_;  // [0]: ||e||^2 of the step; [1]: first non-finite index (as u64)
  message_type message_;
  message_type staging_;
  feedback_metrics metrics_;
  feedback_metrics previous_metrics_;
  std::uint64_t previous_step_ = 0;  // a seeded compressor's step before the last step
  bool can_undo_ = false;
};

}  // namespace gradcomp::cuda
