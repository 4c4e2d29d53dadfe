#pragma once
// What it means to be a payload and a compressor, and the compile-time categories that the
// theory of compressed SGD distinguishes.
//
// A compressor C maps x in R^d to a payload m; decode(m) in R^d is what the receiver adds.
// Three families of guarantees appear in the literature, and they are not interchangeable:
//
//   absolute (Sahu et al. 2021, "Rethinking gradient sparsification..."):
//       ||x - decode(C(x))||^2 <= absolute_bound(d)   for every x in R^d.
//       The error does not shrink with ||x||: hard-threshold, rounding to a grid.
//   delta-contraction (Stich et al. 2018; Karimireddy et al. 2019):
//       E ||x - decode(C(x))||^2 <= (1 - delta(d)) ||x||^2,  0 < delta <= 1.
//       Deterministic compressors meet it for every x: top-k (delta = k/d), scaled sign
//       (delta = 1/d), blockwise sign (delta = 1/B). Random-k meets it in expectation.
//   unbiased with variance omega (Alistarh et al. 2017):
//       E decode(C(x)) = x  and  E ||decode(C(x)) - x||^2 <= omega(d) ||x||^2.
//       QSGD, random-k scaled by d/k (omega = d/k - 1).
//
// Error feedback makes any contractive compressor converge at the rate of SGD; absolute
// compressors converge too, with an error term set by the bound rather than by ||x||.
// A compressor declares its category by providing the member function; the concepts
// below check the declaration, the unit tests check the inequality.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "execution.hpp"

namespace gradcomp {

/// A payload: what crosses the wire. It can be added to a dense vector (decompress_add),
/// counts the elements it carries, knows its exact encoded size, encodes itself into a
/// buffer of that size, and replaces itself by a decoded buffer (throwing gc::error on
/// malformed input and leaving itself unchanged).
template <class P>
concept payload =
    std::semiregular<P> && std::floating_point<typename P::value_type> &&
    requires(const P& p, P& q, std::span<typename P::value_type> dense, typename P::value_type alpha,
             std::span<std::byte> dst, std::span<const std::byte> src) {
      p.decompress_add(dense, alpha);
      { p.sent_elements() } -> std::convertible_to<std::size_t>;
      { p.wire_bytes() } -> std::convertible_to<std::size_t>;
      { p.encode_to(dst) } -> std::convertible_to<std::size_t>;
      q.decode_from(src);
    };

/// The payload a compressor C produces for value type T.
template <class C, class T>
using payload_t = typename std::remove_cvref_t<C>::template payload_type<T>;

/// A compressor for vectors of T: it names its payload type and compresses on the
/// sequential reference back end. compress may change the compressor's state (random
/// compressors advance their step), so it takes C by non-const reference.
template <class C, class T>
concept compressor = std::floating_point<T> && requires { typename payload_t<C, T>; } &&
                     payload<payload_t<C, T>> &&
                     requires(std::remove_cvref_t<C>& c, std::span<const T> x, payload_t<C, T>& out) {
                       c.compress(exec::seq, x, out);
                     };

/// ||x - decode(C(x))||^2 <= c.absolute_bound(d) for every x of dimension d.
template <class C, class T>
concept absolute_compressor = compressor<C, T> && requires(const std::remove_cvref_t<C>& c, std::size_t d) {
  { c.absolute_bound(d) } -> std::convertible_to<double>;
};

/// E||x - decode(C(x))||^2 <= (1 - c.delta(d)) ||x||^2, with 0 < delta <= 1.
template <class C, class T>
concept contractive_compressor = compressor<C, T> && requires(const std::remove_cvref_t<C>& c, std::size_t d) {
  { c.delta(d) } -> std::convertible_to<double>;
};

/// E decode(C(x)) = x and E||decode(C(x)) - x||^2 <= c.omega(d) ||x||^2.
template <class C, class T>
concept unbiased_compressor = compressor<C, T> && requires(const std::remove_cvref_t<C>& c, std::size_t d) {
  { c.omega(d) } -> std::convertible_to<double>;
};

/// A compressor that draws random numbers from a (seed, step) stream and advances step
/// on every call. Workers that share the seed and call it once per step stay in lockstep.
template <class C>
concept seeded_compressor = requires(std::remove_cvref_t<C>& c) {
  { c.seed } -> std::convertible_to<std::uint64_t>;
  { c.step } -> std::convertible_to<std::uint64_t>;
};

}  // namespace gradcomp
