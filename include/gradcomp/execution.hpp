#pragma once
// Execution policies: which back end runs a compressor.
//
// A policy is an empty tag object passed as the first argument of gc::compress. The core
// defines exec::seq, the sequential reference every other back end is tested against.
// Back ends add their own policies (exec::par in <gradcomp/cpu/...>, gc::cuda::par) and
// register them with is_execution_policy_v. A policy may name a fallback() policy: a
// compressor that has no kernel for the policy then runs on the fallback instead.
#include <type_traits>

namespace gradcomp {

namespace exec {

/// The sequential reference back end: plain loops, written to be read.
struct seq_t {
  explicit constexpr seq_t() = default;
};
inline constexpr seq_t seq{};

}  // namespace exec

/// Specialise to true for every execution policy type.
template <class Policy>
inline constexpr bool is_execution_policy_v = false;

template <>
inline constexpr bool is_execution_policy_v<exec::seq_t> = true;

template <class Policy>
concept execution_policy = is_execution_policy_v<std::remove_cvref_t<Policy>>;

}  // namespace gradcomp
