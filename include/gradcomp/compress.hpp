#pragma once
// The customisation points: gc::compress, gc::decompress_add, gc::sent_elements,
// gc::wire_bytes, gc::encode, gc::decode.
//
// They are function objects (as in std::ranges), so a qualified call gc::compress(...)
// still reaches user-defined compressors and payloads, and back ends can add kernels
// without touching the compressor's header. gc::compress(policy, c, x, out) picks, in order:
//   1. compress_with(policy, c, x, out) found by argument-dependent lookup: a back end's
//      kernel for this (policy, compressor) pair, declared beside its policy type;
//   2. c.compress(policy, x, out): the compressor's own member for this policy (every
//      compressor has one for exec::seq, its readable reference definition);
//   3. policy.fallback(): a policy without a kernel for c runs c on its fallback policy.
#include <concepts>
#include <cstddef>
#include <ranges>
#include <span>
#include <type_traits>
#include <vector>

#include "concepts.hpp"
#include "execution.hpp"

namespace gradcomp {

namespace detail {

template <class>
inline constexpr bool always_false = false;

void compress_with() = delete;  // makes the unqualified call below look up by ADL only

struct compress_fn {
  template <class Policy, class C, std::ranges::contiguous_range R, class Out>
    requires execution_policy<Policy>
  void operator()(const Policy& policy, C&& c, R&& x, Out& out) const {
    using T = std::remove_cv_t<std::ranges::range_value_t<R>>;
    dispatch(policy, c, std::span<const T>(std::ranges::data(x), std::ranges::size(x)), out);
  }

 private:
  template <class Policy, class C, class T, class Out>
  static void dispatch(const Policy& policy, C& c, std::span<const T> x, Out& out) {
    if constexpr (requires { compress_with(policy, c, x, out); })
      compress_with(policy, c, x, out);
    else if constexpr (requires { c.compress(policy, x, out); })
      c.compress(policy, x, out);
    else if constexpr (requires { policy.fallback(); })
      dispatch(policy.fallback(), c, x, out);
    else
      static_assert(always_false<C>, "gc::compress: this compressor has no kernel for this policy or payload");
  }
};

void decompress_add_with() = delete;  // ADL only, as compress_with

struct decompress_add_fn {
  /// dense += alpha * decode(p), on a back end: decompress_add_with(policy, p, dense, alpha)
  /// found by ADL, else the policy's fallback, else the payload's own (sequential) member.
  template <execution_policy Policy, payload P, std::ranges::contiguous_range R>
  void operator()(const Policy& policy, const P& p, R&& dense,
                  typename P::value_type alpha = typename P::value_type(1)) const {
    dispatch(policy, p, std::span<typename P::value_type>(std::ranges::data(dense), std::ranges::size(dense)), alpha);
  }
  /// dense += alpha * decode(p), sequentially.
  template <payload P>
  void operator()(const P& p, std::span<typename P::value_type> dense,
                  typename P::value_type alpha = typename P::value_type(1)) const {
    p.decompress_add(dense, alpha);
  }
  template <payload P, std::ranges::contiguous_range R>
    requires(!std::is_same_v<std::remove_cvref_t<R>, std::span<typename P::value_type>>)
  void operator()(const P& p, R&& dense, typename P::value_type alpha = typename P::value_type(1)) const {
    p.decompress_add(std::span<typename P::value_type>(std::ranges::data(dense), std::ranges::size(dense)), alpha);
  }

 private:
  template <class Policy, class P, class T>
  static void dispatch(const Policy& policy, const P& p, std::span<T> dense, T alpha) {
    if constexpr (requires { decompress_add_with(policy, p, dense, alpha); })
      decompress_add_with(policy, p, dense, alpha);
    else if constexpr (requires { policy.fallback(); })
      dispatch(policy.fallback(), p, dense, alpha);
    else
      p.decompress_add(dense, alpha);
  }
};

struct sent_elements_fn {
  template <payload P>
  std::size_t operator()(const P& p) const { return p.sent_elements(); }
};

struct wire_bytes_fn {
  template <payload P>
  std::size_t operator()(const P& p) const { return p.wire_bytes(); }
};

struct encode_fn {
  /// Replaces the contents of bytes with the encoding of p.
  template <payload P>
  void operator()(const P& p, std::vector<std::byte>& bytes) const {
    std::vector<std::byte> out(p.wire_bytes());
    p.encode_to(out);
    bytes = std::move(out);
  }
  /// Writes the encoding of p to the start of dst (at least wire_bytes(p) long); returns
  /// the number of bytes written. Use this to fill a slice of a larger send buffer.
  template <payload P>
  std::size_t operator()(const P& p, std::span<std::byte> dst) const { return p.encode_to(dst); }
  /// The encoding of p.
  template <payload P>
  std::vector<std::byte> operator()(const P& p) const {
    std::vector<std::byte> out(p.wire_bytes());
    p.encode_to(out);
    return out;
  }
};

template <class P>
struct decode_fn {
  /// The payload encoded in bytes; throws gc::error if they are malformed.
  P operator()(std::span<const std::byte> bytes) const {
    P p;
    p.decode_from(bytes);
    return p;
  }
};

struct decode_into_fn {
  /// Replaces out by the payload encoded in bytes, reusing its storage; throws gc::error
  /// and leaves out unchanged if they are malformed.
  template <payload P>
  void operator()(std::span<const std::byte> bytes, P& out) const { out.decode_from(bytes); }
};

}  // namespace detail

inline constexpr detail::compress_fn compress{};
inline constexpr detail::decompress_add_fn decompress_add{};
inline constexpr detail::sent_elements_fn sent_elements{};
inline constexpr detail::wire_bytes_fn wire_bytes{};
inline constexpr detail::encode_fn encode{};
inline constexpr detail::decode_into_fn decode_into{};
/// gc::decode<P>(bytes): the payload of type P encoded in bytes.
template <payload P>
inline constexpr detail::decode_fn<P> decode{};

}  // namespace gradcomp
