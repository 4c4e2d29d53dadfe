#pragma once
// Compressing a model's gradient when it comes as a list of tensors (one per layer):
//
//   gc::compress_model(policy, c, tensors, out)   c applied to the concatenation of the
//       tensors (whole-model Top-k: the k largest over all layers); indices count over the
//       concatenation, tensor 0 first. The reference concatenates into a temporary and calls
//       gc::compress; a back end may provide compress_model_with(policy, c, tensors, out)
//       (backend.hpp) that reads the tensors in place.
//   gc::compress_layers(policy, c, tensors, outs)  outs[i] = c(tensors[i]) for every i, in
//       order (layer-wise compression): the same as calling gc::compress once per tensor, so
//       a seeded compressor (random_k, qsgd) advances its step once per tensor. A back end
//       may provide compress_layers_with(policy, c, tensors, outs), e.g. to spread many small
//       tensors over threads. If a tensor fails, the call throws the error of the first
//       failing tensor (lowest index) on every back end, a seeded compressor's step is where
//       it was before the call, and each outs[i] holds either what it held before or c's
//       result for tensors[i] (which ones is unspecified).
//
// `tensors` is a contiguous range of std::span<const T> (std::span<const std::span<const T>>,
// std::vector<std::span<const T>>, ...); `outs` a contiguous range of payloads of the same
// length. Empty tensors are allowed (they own no index), and so is an empty list (a payload
// of dimension 0).
#include <concepts>
#include <cstddef>
#include <ranges>
#include <span>
#include <type_traits>
#include <vector>

#include "backend.hpp"
#include "compress.hpp"
#include "concepts.hpp"
#include "detail/bits.hpp"
#include "error.hpp"
#include "execution.hpp"

namespace gradcomp {

namespace detail {

template <class S>
inline constexpr bool is_const_span_v = false;
template <class T>
inline constexpr bool is_const_span_v<std::span<const T>> = std::floating_point<T>;

/// A contiguous range of std::span<const T>: the tensors of a model.
template <class R>
concept tensor_list = std::ranges::contiguous_range<R> && is_const_span_v<std::ranges::range_value_t<R>>;

template <tensor_list R>
using tensor_value_t = std::remove_const_t<typename std::ranges::range_value_t<R>::element_type>;

template <tensor_list R>
std::span<const std::span<const tensor_value_t<R>>> as_tensor_span(R& tensors) {
  return {std::ranges::data(tensors), std::ranges::size(tensors)};
}

/// The length of the concatenation, or fail(where) if it overflows.
template <class T>
std::size_t total_size(std::span<const std::span<const T>> tensors, const char* where) {
  std::size_t d = 0;
  for (const std::span<const T> t : tensors) d = checked_add(d, t.size(), where, "total size of the tensors");
  return d;
}

struct compress_model_fn {
  template <class Policy, class C, tensor_list R, class Out>
    requires execution_policy<Policy>
  void operator()(const Policy& policy, C&& c, R&& tensors, Out& out) const {
    using T = tensor_value_t<R>;
    const std::span<const std::span<const T>> list = as_tensor_span(tensors);
    backend::run<backend::compress_model_hook>(policy, c, list, out);
  }
};

struct compress_layers_fn {
  template <class Policy, class C, tensor_list R, std::ranges::contiguous_range O>
    requires execution_policy<Policy>
  void operator()(const Policy& policy, C&& c, R&& tensors, O&& outs) const {
    using T = tensor_value_t<R>;
    using P = std::ranges::range_value_t<O>;
    const std::span<const std::span<const T>> list = as_tensor_span(tensors);
    const std::span<P> payloads(std::ranges::data(outs), std::ranges::size(outs));
    if (list.size() != payloads.size())
      fail("compress_layers", "got ", list.size(), " tensors but ", payloads.size(), " output payloads");
    // A bad parameter fails before any tensor is compressed (and before any step advances).
    if constexpr (requires { c.validate(); }) c.validate();
    if constexpr (seeded_compressor<C> && !std::is_const_v<std::remove_reference_t<C>>) {
      // A tensor that fails part-way leaves the step where it was before the call, whatever
      // the back end: the sequential loop stops after some steps, a parallel one anywhere.
      const auto step0 = c.step;
      try {
        backend::run<backend::compress_layers_hook>(policy, c, list, payloads);
      } catch (...) {
        c.step = step0;
        throw;
      }
    } else {
      backend::run<backend::compress_layers_hook>(policy, c, list, payloads);
    }
  }
};

}  // namespace detail

inline constexpr detail::compress_model_fn compress_model{};
inline constexpr detail::compress_layers_fn compress_layers{};

}  // namespace gradcomp
