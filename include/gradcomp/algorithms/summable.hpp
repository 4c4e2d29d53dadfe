#pragma once
// How the messages of an allreduce-class compressor (aggregation.hpp) are summed in
// compressed form: gc::summation<Payload> says which words must agree across workers for
// their messages to add up, which values are summed, and how to rebuild a message that
// carries the sum. A user payload opts in by specialising gc::summation.
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "../payload/dense.hpp"
#include "../payload/seeded_sparse.hpp"

namespace gradcomp {

/// Specialise for a payload P whose messages add up in compressed form:
///   static constexpr const char* label;            what the messages are, for errors
///   static constexpr std::array<const char*, K> fields;  names of the key words
///   static std::array<std::uint64_t, K> key(const P&);   must be equal on every worker
///   static std::span<const T> values(const P&);          the values that are summed
///   static void with_values(const P& like, std::span<const T> summed, P& out);
///                                                        out = like with its values replaced
///   static constexpr const char* hint;             what a mismatch usually means
template <class P>
struct summation;

template <std::floating_point T, std::unsigned_integral Index>
struct summation<seeded_sparse_vector<T, Index>> {
  using payload = seeded_sparse_vector<T, Index>;
  static constexpr const char* label = "random-k messages";
  static constexpr std::array<const char*, 4> fields{"seed", "step", "k", "dim"};
  static constexpr const char* hint = "every worker must construct random_k with the same seed and k";

  static std::array<std::uint64_t, 4> key(const payload& p) { return {p.seed, p.step, p.values.size(), p.dim}; }
  static std::span<const T> values(const payload& p) { return p.values; }
  static void with_values(const payload& like, std::span<const T> summed, payload& out) {
    out.dim = like.dim;
    out.seed = like.seed;
    out.step = like.step;
    out.indices = like.indices;
    out.values.assign(summed.begin(), summed.end());
  }
};

template <std::floating_point T>
struct summation<dense_vector<T>> {
  using payload = dense_vector<T>;
  static constexpr const char* label = "dense messages";
  static constexpr std::array<const char*, 1> fields{"dim"};
  static constexpr const char* hint = "every worker must pass vectors of the same dimension";

  static std::array<std::uint64_t, 1> key(const payload& p) { return {p.values.size()}; }
  static std::span<const T> values(const payload& p) { return p.values; }
  static void with_values(const payload&, std::span<const T> summed, payload& out) {
    out.values.assign(summed.begin(), summed.end());
  }
};

/// A payload whose messages can be summed in compressed form.
template <class P>
concept summable_payload = requires(const P& p, P& out, std::span<const typename P::value_type> v) {
  summation<P>::key(p);
  { summation<P>::values(p) } -> std::convertible_to<std::span<const typename P::value_type>>;
  summation<P>::with_values(p, v, out);
  { summation<P>::label } -> std::convertible_to<const char*>;
  { summation<P>::hint } -> std::convertible_to<const char*>;
};

namespace detail {

/// "(seed 1, step 2, k 3, dim 4)"
template <class P, std::size_t K>
std::string describe_key(const std::array<std::uint64_t, K>& key) {
  std::string s = "(";
  for (std::size_t i = 0; i < K; ++i)
    s += std::string(i ? ", " : "") + summation<P>::fields[i] + " " + std::to_string(key[i]);
  return s + ")";
}

}  // namespace detail

}  // namespace gradcomp
