#pragma once
// The customisation points: gc::compress, gc::decompress_add, gc::sent_elements,
// gc::wire_bytes, gc::encode, gc::decode.
//
// They are function objects (as in std::ranges), so a qualified call gc::compress(...)
// still reaches user-defined compressors and payloads, and back ends can add kernels
// without touching the compressor's header. What runs is decided by backend::run, the one
// rule of backend.hpp: the policy's hook (compress_with found by ADL, else the compressor's
// member c.compress(policy, x, out)), else the same on policy.fallback(), and so on; every
// compressor has the exec::seq member, its readable reference definition.
#include <concepts>
#include <cstddef>
#include <ranges>
#include <span>
#include <type_traits>
#include <vector>

#include "backend.hpp"
#include "concepts.hpp"
#include "execution.hpp"

namespace gradcomp {

namespace detail {

struct compress_fn {
  template <class Policy, class C, std::ranges::contiguous_range R, class Out>
    requires execution_policy<Policy>
  void operator()(const Policy& policy, C&& c, R&& x, Out& out) const {
    using T = std::remove_cv_t<std::ranges::range_value_t<R>>;
    backend::run<backend::compress_hook>(policy, c, std::span<const T>(std::ranges::data(x), std::ranges::size(x)),
                                         out);
  }
};

struct decompress_add_fn {
  /// dense += alpha * decode(p) on a back end (backend::run: decompress_add_with found by
  /// ADL, else the fallback's, else the payload's own sequential member).
  /// (P is any payload type the policy has a kernel for: a back end's device payloads too.)
  template <execution_policy Policy, class P, std::ranges::contiguous_range R>
    requires std::floating_point<typename P::value_type>
  void operator()(const Policy& policy, const P& p, R&& dense,
                  typename P::value_type alpha = typename P::value_type(1)) const {
    using T = typename P::value_type;
    backend::run<backend::decompress_add_hook>(policy, p, std::span<T>(std::ranges::data(dense), std::ranges::size(dense)),
                                               alpha);
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
