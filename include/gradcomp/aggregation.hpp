#pragma once
// How the messages of a compressor combine across workers: its aggregation class.
//
//   allreduce  the sum of the workers' messages is itself a message of the same form, so the
//              messages are summed in compressed form by an all-reduce of their values (shared-
//              seed random-k: the same indices on every worker; identity and casts: dense
//              values). Each worker sends and receives about one message.
//   gather     messages differ in support or in scale (Top-k, hard-threshold, sign, QSGD), so
//              every worker must receive every other worker's message and decode them all
//              (an allgather), n - 1 messages per worker.
//
// A compressor declares its class at compile time with a member
//     static constexpr gradcomp::aggregation_class aggregation = gradcomp::aggregation_class::allreduce;
// and a compressor that declares nothing is gathered, which is always correct. The
// distributed schemes and the bucket exchange pick their collective from it
// (aggregation_of_v); an allreduce-class compressor's payload must also say which of its
// values are summed (gc::summation<Payload>, algorithms/summable.hpp).
#include <type_traits>

namespace gradcomp {

enum class aggregation_class {
  gather,     // every worker decodes every message (allgather)
  allreduce,  // messages are summed in compressed form (all-reduce of their values)
};

namespace detail {

template <class C>
constexpr aggregation_class aggregation_of() {
  if constexpr (requires { std::remove_cvref_t<C>::aggregation; })
    return std::remove_cvref_t<C>::aggregation;
  else
    return aggregation_class::gather;
}

}  // namespace detail

/// The aggregation class compressor C declares, or gather if it declares none.
template <class C>
inline constexpr aggregation_class aggregation_of_v = detail::aggregation_of<C>();

}  // namespace gradcomp
