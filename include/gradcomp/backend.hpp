#pragma once
// The compute contract between gradcomp and a back end: every hook a back end may provide,
// and the one rule that picks what runs.
//
// A back end is an execution policy type (registered with is_execution_policy_v, see
// execution.hpp) plus free functions named after the hooks below, declared in the policy's
// namespace so that argument-dependent lookup finds them. Nothing else: a back end never
// edits a compressor's header, and the library never names a back end.
//
//   hook                                                   what it must compute
//   compress_with(policy, c, x, out)                       out = C(x)
//   decompress_add_with(policy, p, dense, alpha)           dense += alpha * decode(p)
//   feedback_input_with(policy, e, g, scale, p)            p = e + scale * g
//   squared_norm_with(policy, x) -> double                 ||x||^2 in the reference order
//   feedback_step_with(policy, c, e, g, scale, e_new, out) -> double
//                                                          the whole error-feedback step:
//                                                          e_new = p - decode(out), out = C(p),
//                                                          p = e + scale * g; returns ||e_new||^2
//   compress_model_with(policy, c, tensors, out)           out = C(concatenation of tensors)
//   compress_layers_with(policy, c, tensors, outs)         outs[i] = C(tensors[i]), in order
//   scale_with(policy, x, factor)                          x[i] = factor * x[i] (one rounding)
//   widen_with(policy, h, out)                             out[i] = to_float(h[i]) for a
//                                                          16-bit gradient (float16.hpp)
//
// Every hook must give bit for bit what the sequential reference gives (docs/backends.md
// lists the rules that make this possible: element formulas, the order of sums, ties).
//
// The rule, one for every hook (backend::run): for policy P,
//   1. P's own hook, found by ADL (for compress, also the compressor's member
//      c.compress(P, x, out));
//   2. else, if P names a fallback() policy, the same search on it (and its fallback, ...);
//   3. else the reference: the sequential definition, or, for the hooks that are a
//      composition of others (feedback_step, compress_model, compress_layers), that
//      composition run on P itself, so that P's own kernels for the pieces are used.
#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "float16.hpp"
#include "detail/bits.hpp"
#include "detail/element_rules.hpp"
#include "detail/reduce.hpp"

namespace gradcomp {

namespace detail {

template <class>
inline constexpr bool always_false = false;

}  // namespace detail

namespace backend {

// The hook names, declared deleted so that the unqualified calls below find a back end's
// functions by argument-dependent lookup only (never an unrelated function in scope).
void compress_with() = delete;
void decompress_add_with() = delete;
void feedback_input_with() = delete;
void squared_norm_with() = delete;
void feedback_step_with() = delete;
void compress_model_with() = delete;
void compress_layers_with() = delete;
void widen_with() = delete;
void scale_with() = delete;

/// out = C(x). Provided by compress_with(policy, c, x, out) or by the compressor's member
/// c.compress(policy, x, out) (the hook wins). Every compressor has the exec::seq member,
/// so the search always ends there for policies that fall back to seq.
struct compress_hook {
  template <class P, class C, class T, class Out>
    requires requires(const P& p, C& c, std::span<const T> x, Out& out) { compress_with(p, c, x, out); }
  static void call(const P& p, C& c, std::span<const T> x, Out& out) {
    compress_with(p, c, x, out);
  }
  template <class P, class C, class T, class Out>
    requires(!requires(const P& p, C& c, std::span<const T> x, Out& out) { compress_with(p, c, x, out); } &&
             requires(const P& p, C& c, std::span<const T> x, Out& out) { c.compress(p, x, out); })
  static void call(const P& p, C& c, std::span<const T> x, Out& out) {
    c.compress(p, x, out);
  }
};

/// dense += alpha * decode(p). Reference: the payload's own member.
struct decompress_add_hook {
  template <class Policy, class P, class T>
  static auto call(const Policy& q, const P& p, std::span<T> dense, T alpha)
      -> decltype(decompress_add_with(q, p, dense, alpha)) {
    return decompress_add_with(q, p, dense, alpha);
  }
  template <class Policy, class P, class T>
  static void reference(const Policy&, const P& p, std::span<T> dense, T alpha) {
    p.decompress_add(dense, alpha);
  }
};

/// p = e + scale * g. Reference: detail::feedback_input.
struct feedback_input_hook {
  template <class Policy, class T>
  static auto call(const Policy& q, std::span<const T> e, std::span<const T> g, T scale, std::span<T> p)
      -> decltype(feedback_input_with(q, e, g, scale, p)) {
    return feedback_input_with(q, e, g, scale, p);
  }
  template <class Policy, class T>
  static void reference(const Policy&, std::span<const T> e, std::span<const T> g, T scale, std::span<T> p) {
    detail::feedback_input(e, g, scale, p);
  }
};

/// x[i] = factor * x[i], in place (gradient clipping). Reference: the loop.
struct scale_hook {
  template <class Policy, class T>
  static auto call(const Policy& q, std::span<T> x, T factor) -> decltype(scale_with(q, x, factor)) {
    return scale_with(q, x, factor);
  }
  template <class Policy, class T>
  static void reference(const Policy&, std::span<T> x, T factor) {
    for (T& v : x) v = factor * v;
  }
};

/// out[i] = to_float(h[i]): a 16-bit gradient widened (exactly) to float32.
struct widen_hook {
  template <class Policy, half_precision H>
  static auto call(const Policy& q, std::span<const H> h, std::span<float> out)
      -> decltype(widen_with(q, h, out)) {
    return widen_with(q, h, out);
  }
  template <class Policy, half_precision H>
  static void reference(const Policy&, std::span<const H> h, std::span<float> out) {
    for (std::size_t i = 0; i < h.size(); ++i) out[i] = to_float(h[i]);
  }
};

/// ||x||^2 in the reference order of detail/reduce.hpp.
struct squared_norm_hook {
  template <class Policy, class T>
  static auto call(const Policy& q, std::span<const T> x) -> decltype(double(squared_norm_with(q, x))) {
    return squared_norm_with(q, x);
  }
  template <class Policy, class T>
  static double reference(const Policy&, std::span<const T> x) {
    return detail::squared_norm(x);
  }
};

template <class Hook, class Policy, class... Args>
decltype(auto) run(const Policy& policy, Args&&... args);

/// The error-feedback step. Reference: the four pieces, each dispatched on the same policy.
struct feedback_step_hook {
  template <class Policy, class C, class T, class Out>
  static auto call(const Policy& q, C& c, std::span<const T> e, std::span<const T> g, T scale, std::span<T> e_new,
                   Out& out) -> decltype(double(feedback_step_with(q, c, e, g, scale, e_new, out))) {
    return feedback_step_with(q, c, e, g, scale, e_new, out);
  }
  template <class Policy, class C, class T, class Out>
  static double reference(const Policy& q, C& c, std::span<const T> e, std::span<const T> g, T scale,
                          std::span<T> e_new, Out& out) {
    run<feedback_input_hook>(q, e, g, scale, e_new);                // p = e + scale * g
    run<compress_hook>(q, c, std::span<const T>(e_new), out);       // m = C(p)
    run<decompress_add_hook>(q, std::as_const(out), e_new, T(-1));  // e = p - decode(m)
    return run<squared_norm_hook>(q, std::span<const T>(e_new));
  }
};

/// C on the concatenation of a list of tensors. Reference: concatenate, then compress on
/// the same policy.
struct compress_model_hook {
  template <class Policy, class C, class T, class Out>
  static auto call(const Policy& q, C& c, std::span<const std::span<const T>> tensors, Out& out)
      -> decltype(compress_model_with(q, c, tensors, out)) {
    return compress_model_with(q, c, tensors, out);
  }
  template <class Policy, class C, class T, class Out>
  static void reference(const Policy& q, C& c, std::span<const std::span<const T>> tensors, Out& out) {
    std::size_t d = 0;
    for (const std::span<const T> t : tensors) d = gradcomp::detail::checked_add(d, t.size(), "compress_model", "total size of the tensors");
    std::vector<T> joined;
    joined.reserve(d);
    for (const std::span<const T> t : tensors) joined.insert(joined.end(), t.begin(), t.end());
    run<compress_hook>(q, c, std::span<const T>(joined), out);
  }
};

/// outs[i] = C(tensors[i]) for every i, in order. Reference: one compress call per tensor on
/// the same policy.
struct compress_layers_hook {
  template <class Policy, class C, class T, class Out>
  static auto call(const Policy& q, C& c, std::span<const std::span<const T>> tensors, std::span<Out> outs)
      -> decltype(compress_layers_with(q, c, tensors, outs)) {
    return compress_layers_with(q, c, tensors, outs);
  }
  template <class Policy, class C, class T, class Out>
  static void reference(const Policy& q, C& c, std::span<const std::span<const T>> tensors, std::span<Out> outs) {
    for (std::size_t i = 0; i < tensors.size(); ++i) run<compress_hook>(q, c, tensors[i], outs[i]);
  }
};

namespace detail {

template <class Hook, class Policy, class Original, class... Args>
decltype(auto) search(const Policy& policy, const Original& original, Args&&... args) {
  if constexpr (requires { Hook::call(policy, std::forward<Args>(args)...); })
    return Hook::call(policy, std::forward<Args>(args)...);
  else if constexpr (requires { policy.fallback(); })
    return search<Hook>(policy.fallback(), original, std::forward<Args>(args)...);
  else if constexpr (requires { Hook::reference(original, std::forward<Args>(args)...); })
    return Hook::reference(original, std::forward<Args>(args)...);
  else
    static_assert(gradcomp::detail::always_false<Hook>,
                  "gradcomp: no kernel for this call on this policy or its fallbacks, and no reference "
                  "(a compressor needs a compress(exec::seq, x, out) member)");
}

}  // namespace detail

/// Runs hook `Hook` for `policy` by the rule in the header comment.
template <class Hook, class Policy, class... Args>
decltype(auto) run(const Policy& policy, Args&&... args) {
  return detail::search<Hook>(policy, policy, std::forward<Args>(args)...);
}

/// True when `policy` itself (not a fallback) has a kernel for `Hook` with these argument
/// types: what a benchmark or a test asks to know whether a call is accelerated.
template <class Hook, class Policy, class... Args>
inline constexpr bool has_kernel = requires(const Policy& p, Args&... args) { Hook::call(p, args...); };

}  // namespace backend

}  // namespace gradcomp
